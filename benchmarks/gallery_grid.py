"""Every shipped model on one frame, in a grid (the input top left): docs/gallery/all_models_sintel.jpg.

    python benchmarks/gallery_grid.py /path/to/sintel_ambush_3.mp4 --frame 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from common import ROOT


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    from vidstyle.infer.stylize import EngineConfig, Stylizer
    from vidstyle.io.images import write_image
    from vidstyle.io.video import iter_frames
    from vidstyle.models.zoo import list_models, load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="a held-out clip")
    parser.add_argument("--frame", type=int, default=20, help="frame index")
    parser.add_argument("--width", type=int, default=320, help="width of each tile, pixels")
    parser.add_argument("--columns", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery" / "all_models_sintel.jpg")
    args = parser.parse_args()

    frame = list(iter_frames(args.clip, max_frames=args.frame + 1))[args.frame]
    tiles = [label(frame, "input")]
    for entry in list_models():
        stylizer = Stylizer(load_model(entry.name).net, EngineConfig(device="cpu", compile=False))
        tiles.append(label(stylizer(frame[None])[0], entry.name))
    height = round(frame.shape[0] * args.width / frame.shape[1]) // 2 * 2
    tiles = [cv2.resize(t, (args.width, height), interpolation=cv2.INTER_AREA) for t in tiles]
    # the input alone on the first row, so with 2 columns each style's full and fast networks share a row
    tiles[1:1] = [np.zeros_like(tiles[0])] * (args.columns - 1)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % args.columns)
    rows = [np.concatenate(tiles[i:i + args.columns], 1) for i in range(0, len(tiles), args.columns)]
    write_image(args.out, np.concatenate(rows, 0), jpeg_quality=88)
    print(f"{args.out}: {len(tiles)} tiles")


if __name__ == "__main__":
    main()
