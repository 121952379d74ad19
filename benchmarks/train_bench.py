#!/usr/bin/env python3
"""Training speed: steps/s of the training step under several recipes, measured side by side.
Prints a markdown table.

    python benchmarks/train_bench.py --device cpu --sizes 192 256 --rounds 5
    python benchmarks/train_bench.py --recipes default cached frame-t quick half-res quick-half quick-4pairs

A step is what ``vidstyle train`` does per iteration: ``batch`` pairs (2 * batch images) through the
network, the hybrid loss (VGG-19 to relu4_2, the deepest layer the losses read, on outputs and
inputs), the compound stability term (one more pass of the network on frames t), backward, Adam (the
library's ``pair_loss`` with the default TrainConfig; on CUDA with bf16 autocast). Data comes from
memory (random frames, zero flow), so the loader is not measured.

A recipe (RECIPES) is a memory format, a thread count, whether the VGG forward is compiled
(``torch.compile``, dynamic=False: the crop size is fixed) and which step it takes:

    full      today's step (``default`` is what ``vidstyle train`` does)
    cached    the same, with the inputs' content features given (cached per frame), not recomputed
    half-res  the same, with the loss network at half resolution (outputs, inputs and style image
              downsampled 2x before VGG-19; the style image's scale against the crop is kept)
    frame-t   content and style on frame t of each pair only (temporal, TV and compound as before);
              the inputs' features recomputed every step
    quick     frame-t with cached content features: the step of ``vidstyle train --quick``
              (:func:`vidstyle.training.quick.quick_terms`)
    quick-half, quick-4pairs: quick with the half-resolution loss network; quick with twice the
              pairs per step (fewer but larger steps: compare pairs/s)

On a shared machine absolute numbers drift from minute to minute, so the recipes are timed in
alternation: each round runs ``--steps`` steps of every recipe in turn, and the table gives medians
over rounds. Two clocks: wall time (what a user waits) and the process's CPU time per step (the work
done, less sensitive to other processes taking the cores). "x first" is the ratio to the first
recipe's median at the same size (steps/s for wall time, inverse CPU seconds for CPU time).
Tables of versions before 2026-12 timed the step without the compound term.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads OpenMP: shared cores

import torch  # noqa: E402

TORCH_THREADS = torch.get_num_threads()   # torch's own choice, before setup_device changes it

from torch.nn import functional as F  # noqa: E402

from vidstyle.models.net import build_net  # noqa: E402
from vidstyle.training.losses import HybridLoss  # noqa: E402
from vidstyle.training.quick import quick_terms  # noqa: E402
from vidstyle.training.setup import setup_device  # noqa: E402
from vidstyle.training.train import pair_loss  # noqa: E402
from vidstyle.training.trainconfig import TrainConfig  # noqa: E402
from vidstyle.training.vgg import VGG19  # noqa: E402

# name: (channels_last (None: the training default), threads (0: torch's choice), VGG compiled, step,
#        pairs per step as a multiple of --batch)
RECIPES = {
    "default": (None, 0, False, "full", 1),
    "1-thread": (None, 1, False, "full", 1),
    "channels_last": (True, 0, False, "full", 1),
    "compiled": (None, 0, True, "full", 1),
    "cl-compiled": (True, 0, True, "full", 1),
    "cached": (None, 0, False, "cached", 1),
    "half-res": (None, 0, False, "half-res", 1),
    "frame-t": (None, 0, False, "frame-t", 1),
    "quick": (None, 0, False, "quick", 1),
    "quick-half": (None, 0, False, "quick-half", 1),
    "quick-4pairs": (None, 0, False, "quick", 2),
}
HALF = ("half-res", "quick-half")


class HalfResolution(torch.nn.Module):
    """The loss network on images downsampled 2x (antialiased bilinear): a quarter of its arithmetic."""

    def __init__(self, vgg: VGG19):
        super().__init__()
        self.vgg = vgg

    def forward(self, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        small = F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
        return self.vgg(small, layers)


class GivenTargets(torch.nn.Module):
    """The hybrid loss with the inputs' content features given (as a per-frame cache would)."""

    def __init__(self, loss_fn: HybridLoss, targets: dict[str, torch.Tensor]):
        super().__init__()
        self.loss_fn, self.targets = loss_fn, targets

    def forward(self, *args) -> dict[str, torch.Tensor]:
        return self.loss_fn(*args, targets=self.targets)


def random_batch(pairs: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {"frame_t": torch.rand(pairs, 3, size, size, device=device),
            "frame_t1": torch.rand(pairs, 3, size, size, device=device),
            "flow_bw": torch.zeros(pairs, 2, size, size, device=device),
            "mask": torch.ones(pairs, 1, size, size, device=device)}


class Runner:
    """One recipe's network, loss and optimizer at one crop size, ready to time."""

    def __init__(self, recipe: str, net: str, size: int, pairs: int, device: str, amp: bool):
        self.channels_last, self.threads, compiled, self.step, factor = RECIPES[recipe]
        self.pairs = pairs * factor
        self.setup = setup_device(device, channels_last=self.channels_last)
        self.amp = amp
        self.config = TrainConfig()
        torch.manual_seed(0)
        fmt = self.setup.memory_format
        self.model = build_net(net).to(self.setup.device, memory_format=fmt)
        vgg = VGG19(last_layer="relu4_2")
        if compiled:
            vgg.compile(dynamic=False)
        style = torch.rand(1, 3, 512, 384)
        self.loss_fn = HybridLoss(HalfResolution(vgg) if self.step in HALF else vgg, style).to(
            self.setup.device, memory_format=fmt)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.batch = random_batch(self.pairs, size, self.setup.device)
        with torch.no_grad():
            frames = self.batch["frame_t"] if self.step.startswith("quick") else torch.cat(
                [self.batch["frame_t"], self.batch["frame_t1"]])
            self.targets = self.loss_fn.vgg(frames, self.loss_fn.content_layers)
        self.compound = (self.config.compound_weight, self.config.compound_shift, self.config.compound_noise)

    def loss(self) -> torch.Tensor:
        if self.step in ("full", "half-res", "cached"):
            loss_fn = GivenTargets(self.loss_fn, self.targets) if self.step == "cached" else self.loss_fn
            return pair_loss(self.model, loss_fn, self.batch, self.setup, self.amp, self.config)["total"]
        targets = self.targets
        if self.step == "frame-t":
            with torch.no_grad():
                targets = self.loss_fn.vgg(self.batch["frame_t"], self.loss_fn.content_layers)
        return quick_terms(self.model, self.loss_fn, self.batch, targets, self.compound)["total"]

    def run(self, steps: int) -> tuple[float, float]:
        """Seconds per step, (wall, CPU time of this process)."""
        torch.set_num_threads(self.threads or TORCH_THREADS)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            self.loss().backward()
            self.optimizer.step()
        if self.setup.is_cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def bench_size(net: str, size: int, recipes: list[str], args) -> list[dict]:
    runners = {r: Runner(r, net, size, args.batch, args.device, args.amp) for r in recipes}
    for runner in runners.values():
        runner.run(1)   # warm-up: first-call allocations and oneDNN primitive creation
    times = {r: [] for r in recipes}
    for _ in range(args.rounds):
        for r in recipes:
            times[r].append(runners[r].run(args.steps))
    rows = []
    for r in recipes:
        wall = statistics.median(t[0] for t in times[r])
        cpu = statistics.median(t[1] for t in times[r])
        spread = (min(t[0] for t in times[r]), max(t[0] for t in times[r]))
        rows.append({"net": net, "size": size, "recipe": r, "steps_s": 1 / wall, "cpu_s": cpu,
                     "pairs": runners[r].pairs,
                     "spread": spread, "threads": runners[r].threads or TORCH_THREADS,
                     "cl": runners[r].setup.memory_format == torch.channels_last})
    base = next((row for row in rows if row["recipe"] == recipes[0]), rows[0])
    for row in rows:
        row["ratio"] = row["steps_s"] / base["steps_s"]
        row["cpu_ratio"] = base["cpu_s"] / row["cpu_s"]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[192, 256])
    parser.add_argument("--nets", nargs="+", default=["huang"])
    parser.add_argument("--recipes", nargs="+", default=["default", "cached", "half-res", "frame-t", "quick"],
                        choices=list(RECIPES),
                        help="the first is the reference of the ratios (default: today's step, the candidate "
                             "savings one by one, and the quick step)")
    parser.add_argument("--batch", type=int, default=TrainConfig.batch, help="pairs per step")
    parser.add_argument("--steps", type=int, default=1, help="steps per recipe per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians over them)")
    parser.add_argument("--no-amp", dest="amp", action="store_false")
    args = parser.parse_args(argv)

    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# Training speed: torch {torch.__version__}, {cores} CPUs, load average {load:.1f} at start, "
          f"batch {args.batch} pairs, {args.rounds} alternating rounds of {args.steps} step(s)\n")
    print("| net | crop | recipe | memory format | threads | pairs/step | steps/s (median) | min-max "
          "| x first | CPU s/step | x first (CPU) | pairs/s |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for net in args.nets:
        for size in args.sizes:
            for r in bench_size(net, size, args.recipes, args):
                print(f"| {r['net']} | {r['size']} | {r['recipe']} | "
                      f"{'channels_last' if r['cl'] else 'NCHW'} | {r['threads']} | {r['pairs']} | "
                      f"{r['steps_s']:.3g} | {1 / r['spread'][1]:.3g}-{1 / r['spread'][0]:.3g} | "
                      f"{r['ratio']:.2f} | {r['cpu_s']:.2f} | {r['cpu_ratio']:.2f} | "
                      f"{r['steps_s'] * r['pairs']:.3g} |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
