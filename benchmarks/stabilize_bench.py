#!/usr/bin/env python3
"""What the inference stabilizer (``vidstyle infer --stabilize S``) buys and costs, per strength.

Each model stylizes each clip once; the stabilizer then runs on those frames at every strength, and
:mod:`vidstyle.evaluate.metrics` scores each result against the clip with *Farneback* flow (the stabilizer
itself uses DIS, so it is not graded by its own flow). Printed, one row per (clip, model, S):

    E_warp, its ratio to the input's, style loss (with --style), detail (the stabilized frames'
    mean Laplacian energy over the unstabilized ones': below 1 means blur), trusted (share of
    pixels blended), cuts, and the stabilizer's time per frame.

    python benchmarks/stabilize_bench.py --models starry_night the_wave --clips CLIP.mp4 ... \\
        [--strengths 0 0.4 0.6 0.8] [--max-frames 60] [--style IMG] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)
from vidstyle.evaluate import metrics
from vidstyle.infer.stabilize import Stabilizer, StabilizerConfig
from vidstyle.infer.stylize import EngineConfig, Stylizer
from vidstyle.io.images import read_image
from vidstyle.io.video import iter_frames
from vidstyle.models.zoo import load_model


def detail(frames: list[np.ndarray]) -> float:
    """Mean Laplacian energy of the frames' luma."""
    return statistics.fmean(metrics.hf_energy(metrics.luma(metrics.to_unit(f))) for f in frames)


def stabilized(frames_in: list[np.ndarray], frames_out: list[np.ndarray], strength: float
               ) -> tuple[list[np.ndarray], Stabilizer, float]:
    """The stabilized frames, the stabilizer (for its counters) and its seconds per frame."""
    stabilizer = Stabilizer(StabilizerConfig(strength=strength))
    started = time.perf_counter()
    result = [stabilizer(a, b) for a, b in zip(frames_in, frames_out)]
    return result, stabilizer, (time.perf_counter() - started) / max(len(result), 1)


def bench_clip(clip: Path, model: str, strengths: list[float], args, fidelity) -> list[dict]:
    frames_in = list(iter_frames(clip, max_frames=args.max_frames))
    stylizer = Stylizer(load_model(model).net, EngineConfig(device="cpu", compile=False))
    frames_out = list(stylizer.stream(iter(frames_in)))
    runs = {s: stabilized(frames_in, frames_out, s) for s in strengths}
    report = metrics.evaluate(iter(frames_in), [(f"S={s}", iter(runs[s][0])) for s in strengths],
                              input_name=clip.name, fidelity=fidelity,
                              config=metrics.MetricsConfig(fidelity_every=args.fidelity_every))
    base_detail = detail(frames_out)
    rows = []
    for s, video in zip(strengths, report.videos[1:]):
        frames, stabilizer, seconds = runs[s]
        pairs = max(stabilizer.frames - 1, 1)
        rows.append({"clip": clip.stem, "model": model, "strength": s, "e_warp": video.e_warp,
                     "ratio": video.e_warp_ratio, "style_loss": video.style_loss,
                     "detail": detail(frames) / base_detail, "trusted": stabilizer.trusted / pairs,
                     "cuts": stabilizer.cuts, "ms_per_frame": 1000 * seconds,
                     "input_e_warp": report.videos[0].e_warp, "frames": len(frames)})
    return rows


def print_table(rows: list[dict]) -> None:
    print("| clip | model | S | E_warp | ratio to input | style loss | detail | trusted | cuts | ms/frame |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        style = f"{r['style_loss']:.3g}" if r["style_loss"] is not None else "-"
        print(f"| {r['clip']} | {r['model']} | {r['strength']:g} | {r['e_warp']:.5f} | {r['ratio']:.2f} | "
              f"{style} | {r['detail']:.2f} | {r['trusted']:.2f} | {r['cuts']} | {r['ms_per_frame']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--strengths", nargs="+", type=float, default=[0.0, 0.4, 0.6, 0.8])
    parser.add_argument("--max-frames", type=int, default=60)
    parser.add_argument("--style", help="style image: adds the style loss column (one style for all models)")
    parser.add_argument("--fidelity-every", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    fidelity = metrics.Fidelity(read_image(args.style, "style image"), 512, "cpu") if args.style else None
    rows = [row for clip in args.clips for model in args.models
            for row in bench_clip(clip, model, args.strengths, args, fidelity)]
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
