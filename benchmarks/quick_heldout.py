#!/usr/bin/env python3
"""A model made by ``vidstyle train --quick`` against the quality targets on held-out clips.

For each clip, the first ``--max-frames`` frames go through the default inference path (network, then
the stabilizer at ``vidstyle infer``'s default strength) and are scored with
:func:`vidstyle.evaluate.clipcheck.check_on_frames` (Farneback flow, style loss to the painting the
model was trained on, given by path because a user's painting is not in data/styles/). Also a fade to
black: the clip's middle frame dimmed to 50%, 25%, 10%, 5% and 0%, the output's mean luma at each.
Writes stills (input | output, frames 0 and 1) with ``--stills``.

    python benchmarks/quick_heldout.py --model runs/mine --style painting.jpg \\
        --clips davis_dog.mp4 sam2_cups.mp4 sintel_ambush_3.mp4 [--max-frames 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)
from vidstyle.cli.infer import DEFAULT_STABILIZE
from vidstyle.evaluate import metrics
from vidstyle.evaluate.clipcheck import TARGETS, check_on_frames
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.infer.stylize import Stylizer
from vidstyle.io.images import write_image
from vidstyle.io.video import iter_frames
from vidstyle.models.zoo import load_model

FADE = (0.5, 0.25, 0.1, 0.05, 0.0)


def fade_lumas(net, frame: np.ndarray) -> list[float]:
    stylizer = Stylizer(net, EngineConfig(device="cpu", compile=False))
    dimmed = np.stack([np.rint(frame * k).astype(np.uint8) for k in FADE])
    return [float(metrics.luma(metrics.to_unit(out)).mean()) for out in stylizer(dimmed)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--style", required=True, type=Path)
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--max-frames", type=int, default=40)
    parser.add_argument("--stabilize", type=float, default=DEFAULT_STABILIZE)
    parser.add_argument("--stills", type=Path, help="folder for input | output pictures")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for clip in args.clips:
        frames = list(iter_frames(clip, max_frames=args.max_frames))
        net = load_model(args.model).net
        row = check_on_frames(net, frames, args.style, stabilize=args.stabilize, clip=clip.name,
                              fidelity_every=10)
        row["fade_luma"] = fade_lumas(load_model(args.model).net, frames[len(frames) // 2])
        rows.append(row)
        print(f"| {clip.stem} | {row['warping_error_ratio']:.2f} | {row['style_loss_ratio']:.3f} | "
              f"{row['black_luma']:.3f} | {', '.join(f'{v:.3f}' for v in row['fade_luma'])} |", flush=True)
        if args.stills:
            args.stills.mkdir(parents=True, exist_ok=True)
            stylizer = Stylizer(load_model(args.model).net, EngineConfig(device="cpu", compile=False))
            out = stylizer(np.stack(frames[:2]))
            for t in range(2):
                write_image(args.stills / f"{Path(args.model).name}_{clip.stem}_{t}.jpg",
                            np.concatenate([frames[t], out[t]], axis=1), jpeg_quality=88)
    summary = {k: statistics.median(r[k] for r in rows) for k in TARGETS}
    print(f"median: E_warp ratio {summary['warping_error_ratio']:.2f} "
          f"(target <= {TARGETS['warping_error_ratio']}), "
          f"style ratio {summary['style_loss_ratio']:.3f} (<= {TARGETS['style_loss_ratio']}), "
          f"black luma {summary['black_luma']:.3f} (<= {TARGETS['black_luma']})")
    if args.json:
        record = {"model": args.model, "style": args.style.name, "clips": rows, "median": summary}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
