#!/usr/bin/env python3
"""Network-only frames/s of each CPU backend, alternated in one process (so load drifts hit all alike).

    python benchmarks/backend_bench.py --model starwars_blue starwars_blue_lite --size 640x360 --rounds 3

Backends: PyTorch eager, PyTorch compiled (``torch.compile``; its one-time compile is timed apart),
onnxruntime on the ONNX export with one session using every thread, and onnxruntime with ``--streams``
single-threaded sessions each running its own frame at once (what ``infer`` does on the onnx
backend). Each round times every backend on the same frame for at least ``--seconds``; the table
gives the median over rounds and each row's speed over the first row's (the first model's eager
speed, unless ``--backends`` leaves it out). Several
models (e.g. a model and its distilled lite version) are alternated alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from common import machine, timed_calls

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as vidstyle infer does (before torch loads)


# --backends keys of the fixed rows: (row label, EngineConfig settings); "streams" is the row of
# --streams sessions side by side.
ROWS = {"eager": ("torch eager", dict(backend="torch", compile=False)),
        "compiled": ("torch compiled", dict(backend="torch", compile=True)),
        "onnx": ("onnxruntime", dict(backend="onnx", streams=1))}


def main() -> int:
    import torch

    from vidstyle.infer.onnxengine import OnnxStylizer
    from vidstyle.infer.stylize import EngineConfig, Stylizer
    from vidstyle.models.backends import cached_export
    from vidstyle.models.zoo import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["starwars_blue"])
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing per backend and round")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--backends", default="eager,compiled,onnx,streams",
                        help="rows per model, of: eager, compiled, onnx (one session), streams")
    parser.add_argument("--streams", type=int, default=2,
                        help="sessions side by side in the streams row (0: no such row)")
    args = parser.parse_args()

    width, height = (int(v) for v in args.size.lower().split("x"))
    wanted = args.backends.split(",")
    unknown = sorted(set(wanted) - {*ROWS, "streams"})
    if unknown:
        parser.error(f"--backends: unknown {', '.join(unknown)} (use {', '.join(ROWS)}, streams)")
    backends = dict(ROWS[key] for key in ROWS if key in wanted)
    if args.streams and "streams" in wanted:
        backends[f"onnxruntime, {args.streams} streams"] = dict(backend="onnx", streams=args.streams)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    x_numpy = x.numpy()
    pool = ThreadPoolExecutor(max(1, args.streams))
    stylizers, networks, first_call = {}, {}, {}
    for model in args.model:
        net = load_model(model).net
        for backend, kw in backends.items():
            name = f"{model} {backend}" if len(args.model) > 1 else backend
            config = EngineConfig(device="cpu", threads=args.threads, **kw)
            export = cached_export(net) if kw["backend"] == "onnx" else None   # made once, not timed
            started = time.perf_counter()
            if export is not None:
                stylizer = OnnxStylizer(export, config)
                networks[name] = partial(stylizer.network, x_numpy)
            else:
                stylizer = Stylizer(net, config)
                networks[name] = partial(stylizer.forward, x)
            with torch.inference_mode():
                networks[name]()
            first_call[name] = time.perf_counter() - started
            stylizers[name] = stylizer

    def side_by_side(name: str) -> None:
        """One frame per stream, all at once (the onnx backend's sessions are thread-safe)."""
        call = networks[name]
        list(pool.map(lambda _: call(), range(stylizers[name].streams)))

    fps: dict[str, list[float]] = {name: [] for name in stylizers}
    for r in range(args.rounds):
        for name, stylizer in stylizers.items():
            call = networks[name] if stylizer.streams == 1 else partial(side_by_side, name)
            with torch.inference_mode():
                calls, seconds = timed_calls(call, args.seconds, 2)
            fps[name].append(calls * stylizer.streams / seconds)
        print(f"# round {r + 1}: " + ", ".join(f"{n} {v[-1]:.2f}" for n, v in fps.items()), flush=True)
    print(f"# {machine('cpu')}; {', '.join(args.model)} at {width}x{height}, median of {args.rounds} rounds")
    print("| backend | network frames/s | x first row | first call s |")
    print("|---|---:|---:|---:|")
    first = statistics.median(next(iter(fps.values())))
    for name, stylizer in stylizers.items():
        median = statistics.median(fps[name])
        fell_back = " (fell back)" if name.endswith("compiled") and not stylizer.compiled else ""
        print(f"| {name}{fell_back} | {median:.2f} | {median / first:.2f} | {first_call[name]:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
