#!/usr/bin/env python3
"""Training speed: steps/s and images/s at 256 and 384 px for huang and johnson, the VGG share of a
step, and peak memory. Prints a markdown table.

    python benchmarks/train_bench.py                      # this machine's device
    python benchmarks/train_bench.py --device cpu --steps 3 --threads 2

A step is what ``vidstyle train`` does per iteration: ``batch`` pairs (2 * batch images) through the
network, the hybrid loss (VGG-19 to relu4_2 on outputs and inputs), backward, Adam; on CUDA with bf16
autocast and channels_last, as in training. Data comes from memory (random frames, zero flow), so
the loader is not measured. VGG share = 1 - (time of the same step with the VGG terms left out) /
(time of the full step). Peak memory: CUDA peak allocated; "n/a" on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads OpenMP: shared cores

import torch  # noqa: E402

from vidstyle.losses import HybridLoss, temporal_loss, tv_loss  # noqa: E402
from vidstyle.net import build_net, count_parameters  # noqa: E402
from vidstyle.train import TrainConfig, pair_loss, setup_device  # noqa: E402
from vidstyle.vgg import VGG19  # noqa: E402


def random_batch(pairs: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {"frame_t": torch.rand(pairs, 3, size, size, device=device),
            "frame_t1": torch.rand(pairs, 3, size, size, device=device),
            "flow_bw": torch.zeros(pairs, 2, size, size, device=device),
            "mask": torch.ones(pairs, 1, size, size, device=device)}


def net_only_loss(model, loss_fn, batch, setup, amp):
    """The step without the VGG: the network on both frames, TV and temporal terms only."""
    frames = torch.cat([batch["frame_t"], batch["frame_t1"]]).contiguous(memory_format=setup.memory_format)
    with setup.autocast(amp):
        out_t, out_t1 = model(frames).float().chunk(2)
        return {"total": tv_loss(torch.cat([out_t, out_t1]))
                + temporal_loss(out_t, out_t1, batch["flow_bw"], batch["mask"])}


def seconds_per_step(loss_of, model, loss_fn, batch, setup, amp, steps: int, warmup: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_of(model, loss_fn, batch, setup, amp)["total"].backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if setup.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if setup.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def bench_row(name: str, size: int, pairs: int, setup, amp: bool, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = build_net(name).to(setup.device, memory_format=setup.memory_format)
    vgg = VGG19(last_layer="relu4_2")
    loss_fn = HybridLoss(vgg, torch.rand(1, 3, 512, 384)).to(setup.device, memory_format=setup.memory_format)
    batch = random_batch(pairs, size, setup.device)
    if setup.is_cuda:
        torch.cuda.reset_peak_memory_stats(setup.device)
    full = seconds_per_step(pair_loss, model, loss_fn, batch, setup, amp, steps, warmup)
    peak = (f"{torch.cuda.max_memory_allocated(setup.device) / 2**30:.2f} GiB" if setup.is_cuda else "n/a")
    without_vgg = seconds_per_step(net_only_loss, model, loss_fn, batch, setup, amp, steps, warmup)
    return {"net": name, "params": count_parameters(model), "size": size, "pairs": pairs,
            "steps_s": 1.0 / full, "images_s": 2 * pairs / full, "vgg_share": 1.0 - without_vgg / full,
            "peak": peak}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    parser.add_argument("--nets", nargs="+", default=["huang", "johnson"])
    parser.add_argument("--batch", type=int, default=TrainConfig.batch, help="pairs per step")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 GPU, 3 CPU)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-amp", dest="amp", action="store_false")
    args = parser.parse_args(argv)

    setup = setup_device(args.device, args.threads)
    steps = args.steps or (30 if setup.is_cuda else 3)
    warmup = 5 if setup.is_cuda else 1
    device = (torch.cuda.get_device_name(setup.device) if setup.is_cuda
              else f"CPU, {torch.get_num_threads()} threads")
    precision = "bf16 autocast, channels_last" if setup.is_cuda and args.amp else "fp32"
    print(f"# Training speed: {device}, {precision}, batch {args.batch} pairs, torch {torch.__version__}\n")
    print("| net | params | size | steps/s | images/s | VGG share | peak memory |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.nets:
        for size in args.sizes:
            r = bench_row(name, size, args.batch, setup, args.amp, steps, warmup)
            print(f"| {r['net']} | {r['params'] / 1e6:.2f} M | {r['size']} | {r['steps_s']:.3g} | "
                  f"{r['images_s']:.3g} | {100 * r['vgg_share']:.0f}% | {r['peak']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
