#!/usr/bin/env python3
"""What the lite network's instance norms cost in onnxruntime: lite with fewer of them, alternated.

    python benchmarks/lite_norms.py --size 640x360 --rounds 4

Each row is the lite network (vidstyle.models.netlite, default widths) with some of its twelve norms
replaced by the identity, exported to ONNX and run in an onnxruntime session made as ``infer`` makes
it (vidstyle.models.backends.OnnxRunner, all the threads), on the same random frame. Every round
times every row for at least ``--seconds``, so a change in the machine's speed hits all rows alike;
the table gives the median frames/s over the rounds and each row's speed over lite's. Weights are
random: a norm's cost does not depend on them.

    lite           all 12 norms
    -enc1          without the half-resolution encoder norm (11)
    -res2nd        without the second norm of each residual block and -enc1 (6)
    -res1st        without the first norm of each residual block and -enc1 (6)
    lite2          only the quarter-resolution encoder norm (1): vidstyle's lite2 network
    none           no norm at all
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from common import machine, timed_calls


def variant(name: str):
    from torch import nn

    from vidstyle.models.net import build_net

    if name == "lite2":
        return build_net("lite2").eval()
    net = build_net("lite")
    if name == "lite":
        return net.eval()
    net.encoder[1][1] = nn.Identity()
    for block in net.residuals:
        if name in ("-res2nd", "none"):
            block.body[6] = nn.Identity()
        if name in ("-res1st", "none"):
            block.body[2] = nn.Identity()
    if name == "none":
        net.encoder[2][1] = nn.Identity()
    return net.eval()


VARIANTS = ("lite", "-enc1", "-res2nd", "-res1st", "lite2", "none")


def main() -> int:
    from torch import nn

    from vidstyle.device import usable_cores
    from vidstyle.models.backends import OnnxRunner
    from vidstyle.models.export import export_onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing per row and round")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: every CPU)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()

    width, height = (int(v) for v in args.size.lower().split("x"))
    threads = args.threads or usable_cores()
    frame = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    runners, norms = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.variants:
            net = variant(name)
            norms[name] = sum(isinstance(m, nn.InstanceNorm2d) for m in net.modules())
            runners[name] = OnnxRunner(export_onnx(net, Path(folder) / f"v{len(runners)}.onnx"), threads)
            runners[name](frame)
        speeds: dict[str, list[float]] = {name: [] for name in args.variants}
        for round_ in range(args.rounds):
            for name, runner in runners.items():
                calls, seconds = timed_calls(lambda r=runner: r(frame), args.seconds, 3)
                speeds[name].append(calls / seconds)
            print(f"# round {round_ + 1}: " + ", ".join(f"{n} {s[-1]:.2f}" for n, s in speeds.items()))
    first = statistics.median(speeds[args.variants[0]])
    print(f"# {machine()}; onnxruntime, {threads} threads, {width}x{height}, median of {args.rounds} rounds")
    print(f"| network | instance norms | frames/s | x {args.variants[0]} |")
    print("|---|---:|---:|---:|")
    for name in args.variants:
        median = statistics.median(speeds[name])
        print(f"| {name} | {norms[name]} | {median:.2f} | {median / first:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
