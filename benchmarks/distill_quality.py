#!/usr/bin/env python3
"""How close a distilled model comes to its teacher, frame by frame, on clips it never saw.

For each clip, the first ``--max-frames`` frames go through both networks (no stabilizer); printed
per clip: the mean absolute difference of the outputs (0-255 scale), its 99th percentile, and the
PSNR of the student's frames against the teacher's. Pair it with ``heldout_targets.py`` (E_warp and
style against the input's) for both models.

    python benchmarks/distill_quality.py --teacher starwars_blue --student starwars_blue_lite \\
        --clips davis_dog.mp4 sam2_cups.mp4 sintel_ambush_3.mp4 [--max-frames 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)
from vidstyle.infer.stylize import EngineConfig, Stylizer
from vidstyle.io.video import iter_frames
from vidstyle.models.zoo import load_model


def compare(teacher: Stylizer, student: Stylizer, frames: list[np.ndarray]) -> dict:
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16))
             for a, b in zip(teacher.stream(iter(frames)), student.stream(iter(frames)))]
    stack = np.stack(diffs).astype(np.float64)
    mse = float((stack ** 2).mean())
    psnr = 10 * math.log10(255 ** 2 / mse) if mse > 0 else float("inf")
    return {"frames": len(frames), "mean_abs": float(stack.mean()),
            "p99_abs": float(np.percentile(stack, 99)), "psnr": psnr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--max-frames", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = EngineConfig(device="cpu", compile=False)
    teacher = Stylizer(load_model(args.teacher).net, config)
    student = Stylizer(load_model(args.student).net, config)
    rows = []
    print(f"# {args.student} against {args.teacher}, first {args.max_frames} frames, network only")
    print("| clip | size | mean abs diff (0-255) | 99th pct | PSNR dB |")
    print("|---|---|---:|---:|---:|")
    for clip in args.clips:
        frames = list(iter_frames(clip, max_frames=args.max_frames))
        row = {"clip": clip.stem, "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
               **compare(teacher, student, frames)}
        rows.append(row)
        print(f"| {row['clip']} | {row['size']} | {row['mean_abs']:.2f} | {row['p99_abs']:.0f} "
              f"| {row['psnr']:.1f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"teacher": args.teacher, "student": args.student, "clips": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
