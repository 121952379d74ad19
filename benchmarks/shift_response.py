#!/usr/bin/env python3
"""How much a network's result changes when its input moves by a few pixels or gets a little noise.

A network whose strokes follow the picture gives, for an input shifted by s pixels, its result shifted
by s pixels. For each model and clip this takes the clip's first frame, cuts two windows ``s`` pixels
apart (so both are real picture, no padding inside them) and prints the mean absolute difference, in
grey levels (0-255), between the two results where they overlap, leaving a margin of 24 pixels; then
the same for the whole frame with Gaussian noise of the given spread (grey levels) added, against the
clean frame's result. The stylizing networks downsample twice by 2, so their results are tied to a
grid of 4 pixels: shifts of 4 and 8 pixels change little, shifts of 1-3 pixels change much more.

    python benchmarks/shift_response.py --models starry_night the_wave \\
        --clips sintel_ambush_3.mp4 davis_dog.mp4 [--shifts 1 2 3 4 8 16] [--noise 0.5 1 2 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import common
from vidstyle.errors import VidstyleError
from vidstyle.io.video import iter_frames
from vidstyle.models.zoo import load_model

MARGIN = 24     # pixels left out at every side: the border padding differs between the windows


def result(net: torch.nn.Module, frame: np.ndarray) -> np.ndarray:
    """The network's RGB result of a float32 RGB [0, 1] (H, W, 3) frame, in grey levels."""
    with torch.no_grad():
        out = net(torch.from_numpy(frame).permute(2, 0, 1)[None])
    return out[0].permute(1, 2, 0).numpy() * 255.0


def shift_changes(net: torch.nn.Module, frame: np.ndarray, shifts: list[int]) -> list[float]:
    """For each shift s: mean absolute difference between the results of two windows s pixels apart,
    aligned (the windows are as wide as the largest shift allows)."""
    width = frame.shape[1] - max(shifts)
    base = result(net, frame[:, :width])
    m = MARGIN
    changes = []
    for s in shifts:
        moved = result(net, frame[:, s:s + width])   # moved[:, x] shows base's column x + s
        changes.append(float(np.abs(moved[m:-m, m:width - s - m] - base[m:-m, s + m:width - m]).mean()))
    return changes


def noise_changes(net: torch.nn.Module, frame: np.ndarray, spreads: list[float],
                  rng: np.random.Generator) -> list[float]:
    """For each spread (grey levels): mean absolute difference between the results of the frame and
    of the frame with Gaussian noise of that spread."""
    clean = result(net, frame)
    m = MARGIN
    changes = []
    for spread in spreads:
        noisy = np.clip(frame + rng.normal(0.0, spread / 255.0, frame.shape).astype(np.float32), 0.0, 1.0)
        changes.append(float(np.abs(result(net, noisy) - clean)[m:-m, m:-m].mean()))
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--shifts", nargs="+", type=int, default=[1, 2, 3, 4, 8, 16])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if min(args.shifts) < 1 or min(args.noise) <= 0:
        parser.error("shifts must be at least 1 pixel and noise spreads above 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    frames = {}
    for clip in args.clips:
        first = next(iter(iter_frames(clip, max_frames=1)), None)
        if first is None:
            raise SystemExit(f"{clip}: no frames")
        if first.shape[1] < max(args.shifts) + 4 * MARGIN:
            raise SystemExit(f"{clip}: frame too narrow for a {max(args.shifts)} px shift")
        frames[clip.stem] = first.astype(np.float32) / 255.0
    nets = {name: load_model(name).net for name in args.models}

    print(common.machine("cpu"))
    print("mean change of the result, grey levels; shifted: the overlap of two windows that far apart")
    print("| model | clip | " + " | ".join(f"shift {s} px" for s in args.shifts) + " | "
          + " | ".join(f"noise {n:g}" for n in args.noise) + " |")
    print("|---|---|" + "---:|" * (len(args.shifts) + len(args.noise)))
    for name, net in nets.items():
        for clip, frame in frames.items():
            shifts = shift_changes(net, frame, args.shifts)
            noise = noise_changes(net, frame, args.noise, np.random.default_rng(0))
            print(f"| {name} | {clip} | " + " | ".join(f"{v:.2f}" for v in shifts + noise) + " |")


if __name__ == "__main__":
    try:
        main()
    except VidstyleError as exc:
        print(f"shift_response: error: {exc}", file=sys.stderr)
        sys.exit(2)
