#!/usr/bin/env python3
"""Measure a trained model on a held-out clip, record the numbers in its card, and ship it.

Stylizes the first frames of a clip the model never saw, scores them with ``vidstyle.evaluate.metrics``
(warping error and its ratio to the input's, flicker, style and content loss), writes those into
the model card under ``metrics``, saves the model as float16 into ``--out`` (default
vidstyle/weights/) and a still (input | stylized) into ``--gallery``. Prints one table row.

    python benchmarks/measure_model.py runs/starry_night/starry_night.safetensors \\
        --clip davis_dog.mp4 --style data/styles/vangogh_starry_night.jpg

The card keeps the style image's file name (shipped images live in data/styles/), never a path.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import torch

    from vidstyle.evaluate.metrics import Fidelity, MetricsConfig, evaluate
    from vidstyle.infer.stylize import Stylizer
    from vidstyle.io.images import read_image, write_image
    from vidstyle.io.video import iter_frames
    from vidstyle.models.zoo import load_model, save_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model name or .safetensors path")
    parser.add_argument("--clip", required=True, help="held-out clip")
    parser.add_argument("--style", required=True, help="the style image it was trained on")
    parser.add_argument("--description", help="what the model is, for `vidstyle models` (default: keep)")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", default="320x180", help="frames are resized to WIDTHxHEIGHT")
    parser.add_argument("--fidelity-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "vidstyle" / "weights")
    parser.add_argument("--gallery", type=Path, default=ROOT / "docs" / "gallery")
    args = parser.parse_args()

    size = tuple(int(v) for v in args.size.lower().split("x"))
    model = load_model(args.model)
    frames = np.stack(list(iter_frames(args.clip, size=size, max_frames=args.frames)))
    stylized = np.concatenate([Stylizer(model.net)(frames[i:i + 1]) for i in range(len(frames))])
    style = read_image(args.style, "style image")
    config = MetricsConfig(fidelity_every=args.fidelity_every)
    report = evaluate(frames, [(model.card.name, stylized)], config=config,
                      fidelity=Fidelity(style, config.style_size), style_image=args.style)
    source, result = report.videos

    card = dataclasses.replace(
        model.card,
        style_image=Path(args.style).name,
        description=args.description or model.card.description,
        metrics={
            **model.card.metrics,
            "clip": f"{Path(args.clip).name}, first {len(frames)} frames at {size[0]}x{size[1]} (held out)",
            "warping_error": result.e_warp, "warping_error_input": source.e_warp,
            "warping_error_ratio": result.e_warp_ratio, "luminance_flicker": result.luminance_flicker,
            "style_loss_heldout": result.style_loss, "content_loss_heldout": result.content_loss,
        })
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(model.net, args.out / f"{card.name}.safetensors", card, dtype=torch.float16)

    args.gallery.mkdir(parents=True, exist_ok=True)
    still = np.concatenate([frames[len(frames) // 2], stylized[len(frames) // 2]], axis=1)
    write_image(args.gallery / f"{card.name}.jpg", still, jpeg_quality=88)
    print(f"| {card.name} | {result.e_warp:.5f} | {source.e_warp:.5f} | {result.e_warp_ratio:.2f} "
          f"| {result.style_loss:.3g} | {result.content_loss:.3g} |")


if __name__ == "__main__":
    main()
