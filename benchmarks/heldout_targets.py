#!/usr/bin/env python3
"""The shipped models against the quality targets, as ``python infer.py CLIP --model M`` makes them.

For every model and held-out clip, the default inference path (the network, then the stabilizer at
the default strength of ``vidstyle infer``) stylizes the first ``--max-frames`` frames; the result is
scored with :mod:`vidstyle.evaluate.metrics` (Farneback flow, unlike the stabilizer's DIS). Printed per model:

    E_warp / input's   median over clips (target <= 3)
    style / input's    the stylized frames' style loss over the unstylized input's, to the model's own
                       style image (data/styles/), median over clips (target <= 0.35)
    black luma         mean Rec. 601 luma of a black 640x360 frame's output (target <= 0.12)

    python benchmarks/heldout_targets.py --clips davis_dog.mp4 sam2_cups.mp4 sintel_ambush_3.mp4 \\
        [--models NAME ...] [--stabilize S] [--max-frames 40] [--json out.json]
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
from vidstyle.infer.stabilize import Stabilizer, StabilizerConfig
from vidstyle.infer.stylize import EngineConfig, Stylizer
from vidstyle.io.images import read_image
from vidstyle.io.video import iter_frames
from vidstyle.models.zoo import list_models, load_model

STYLES = Path(__file__).resolve().parent.parent / "data" / "styles"
TARGETS = {"ratio": 3.0, "style_ratio": 0.35, "black_luma": 0.12}


def default_output(stylizer: Stylizer, frames: list[np.ndarray], strength: float) -> list[np.ndarray]:
    """What ``vidstyle infer`` writes for these frames (before encoding)."""
    stabilizer = Stabilizer(StabilizerConfig(strength=strength))
    return [stabilizer(a, b) for a, b in zip(frames, stylizer.stream(iter(frames)))]


def black_luma(stylizer: Stylizer) -> float:
    out = stylizer(np.zeros((1, 360, 640, 3), np.uint8))[0]
    return float(metrics.luma(metrics.to_unit(out)).mean())


def score_model(name: str, clips: list[Path], args) -> dict:
    loaded = load_model(name)
    stylizer = Stylizer(loaded.net, EngineConfig(device="cpu", compile=False))
    style = STYLES / loaded.card.style_image
    fidelity = metrics.Fidelity(read_image(style, "style image"), 512, "cpu")
    per_clip = []
    for clip in clips:
        frames = list(iter_frames(clip, max_frames=args.max_frames))
        output = default_output(stylizer, frames, args.stabilize)
        report = metrics.evaluate(iter(frames), [(name, iter(output))],
                                  input_name=clip.name, fidelity=fidelity,
                                  config=metrics.MetricsConfig(fidelity_every=args.fidelity_every))
        source, result = report.videos
        per_clip.append({"clip": clip.stem, "e_warp": result.e_warp, "ratio": result.e_warp_ratio,
                         "style_loss": result.style_loss, "input_style_loss": source.style_loss,
                         "style_ratio": result.style_loss / source.style_loss})
    return {"model": name, "stabilize": args.stabilize, "clips": per_clip,
            "ratio": statistics.median(c["ratio"] for c in per_clip),
            "style_ratio": statistics.median(c["style_ratio"] for c in per_clip),
            "black_luma": black_luma(stylizer)}


def print_table(rows: list[dict]) -> None:
    print("| model | E_warp / input's (median) | per clip | style / input's (median) | black luma |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        clips = ", ".join(f"{c['ratio']:.2f}" for c in r["clips"])
        print(f"| {r['model']} | {r['ratio']:.2f} | {clips} | {r['style_ratio']:.2f} "
              f"| {r['black_luma']:.3f} |")
    print(f"targets: E_warp ratio <= {TARGETS['ratio']}, style ratio <= {TARGETS['style_ratio']}, "
          f"black luma <= {TARGETS['black_luma']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--models", nargs="+", help="default: every model vidstyle finds")
    parser.add_argument("--stabilize", type=float, default=DEFAULT_STABILIZE)
    parser.add_argument("--max-frames", type=int, default=40)
    parser.add_argument("--fidelity-every", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = args.models or [entry.name for entry in list_models()]
    rows = [score_model(name, args.clips, args) for name in names]
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
