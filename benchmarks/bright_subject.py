#!/usr/bin/env python3
"""How clearly a network keeps a bright subject apart from its surroundings (davis_dog's white dog).

For every ``--every``-th of the first ``--frames`` frames of a clip, the pixels whose input luma is
above ``--threshold`` (below the top ``--skip-rows`` rows, where the sky or a fence may be as bright)
are the subject; the score is the output's mean luma there minus its mean luma elsewhere, averaged
over the frames (Rec. 601 luma in [0, 1]; network alone, no stabilizer). The input's own score is
printed first: a network that paints the subject over with its surroundings' texture scores lower.

    python benchmarks/bright_subject.py davis_dog.mp4 --models the_wave the_wave_lite
"""

from __future__ import annotations

import argparse

import numpy as np

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)


def luma(image: np.ndarray) -> np.ndarray:
    """uint8 RGB -> Rec. 601 luma in [0, 1], as the metrics take it."""
    from vidstyle.evaluate.metrics import luma, to_unit

    return luma(to_unit(image))


def contrast(images: list[np.ndarray], masks: list[np.ndarray]) -> float:
    gaps = []
    for image, mask in zip(images, masks):
        y = luma(image)
        gaps.append(y[mask].mean() - y[~mask].mean())
    return float(np.mean(gaps))


def main() -> None:
    import torch

    from vidstyle.infer.stylize import EngineConfig, Stylizer
    from vidstyle.io.video import iter_frames
    from vidstyle.models.zoo import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.72)
    parser.add_argument("--skip-rows", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = list(iter_frames(args.clip, max_frames=args.frames))[::args.every]
    masks = []
    for frame in frames:
        mask = luma(frame) > args.threshold
        mask[:args.skip_rows] = False
        masks.append(mask)
    print(f"| network | subject contrast |\n|---|---:|\n| input | {contrast(frames, masks):.3f} |")
    for name in args.models:
        stylizer = Stylizer(load_model(name).net, EngineConfig(device="cpu", compile=False, backend="torch"))
        outputs = [stylizer(frame[None])[0] for frame in frames]
        print(f"| {name} | {contrast(outputs, masks):.3f} |")


if __name__ == "__main__":
    main()
