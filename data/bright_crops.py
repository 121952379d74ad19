"""Bright, flat crops from training frames and photos: a photo folder for `vidstyle distill --photos`.

A fast network paints a white table or a snowy slope in flat colour where its full model paints
strokes (docs/fast-networks.md, "Bright, flat frames"). Such regions are rare among the training
clips' frame pairs; this script cuts them out so that a distillation can be given more of them
(`--photos DIR --photo-fraction F`):

    python data/bright_crops.py OUT_DIR --flows FLOWS_DIR --photos PHOTOS_DIR

Every 6th frame of each flow file, and each photo scaled to 456 px on its longer side, is cut into
240 px squares (every 54 px across a frame's middle; every 60 px over a photo). A square is kept when
its mean luma is over 0.58 and its mean Sobel gradient is in the flattest 40% of all squares, at most
12 per clip or photo, flattest first, so that no one source dominates. Written as PNG files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

SIDE = 240
MIN_LUMA = 0.58
FLAT_PERCENTILE = 40
PER_SOURCE = 12


def _score(rgb: np.ndarray) -> tuple[float, float]:
    """Mean luma in [0, 1] and mean absolute Sobel gradient (both directions) of an RGB square."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    return float(grey.mean()), float(np.abs(gx).mean() + np.abs(gy).mean())


def _frame_squares(folder: Path):
    from vidstyle.flow.flowstore import FlowFile, find_flow_files

    for path in find_flow_files([folder]):   # checked as training checks them
        with FlowFile(path) as clip:
            top = max(clip.height - SIDE, 0) // 2
            for t in range(0, clip.num_frames, 6):
                frame = clip.frame(t)
                for x in range(0, clip.width - SIDE + 1, 54):
                    yield path.stem, f"{t:03d}_{x:03d}", frame[top:top + SIDE, x:x + SIDE]


def _photo_squares(folder: Path):
    from vidstyle.io.images import read_image
    from vidstyle.training.data import find_photos

    for path in find_photos([folder]):   # the photos `vidstyle distill --photos` would read
        image = read_image(path, "photo")
        scale = 456 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        for y in range(0, height - SIDE + 1, 60):
            for x in range(0, width - SIDE + 1, 60):
                yield path.stem, f"{y}_{x}", image[y:y + SIDE, x:x + SIDE]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the crops to (created)")
    parser.add_argument("--flows", type=Path, action="append", default=[], help="a folder of flow files")
    parser.add_argument("--photos", type=Path, action="append", default=[], help="a folder of photos")
    args = parser.parse_args(argv)
    squares = []
    for folder in args.flows:
        squares += [(src, tag, crop, *_score(crop)) for src, tag, crop in _frame_squares(folder)]
    for folder in args.photos:
        squares += [(src, tag, crop, *_score(crop)) for src, tag, crop in _photo_squares(folder)]
    if not squares:
        print("bright_crops: no frames or photos found", file=sys.stderr)
        return 1
    flat = np.percentile([s[4] for s in squares], FLAT_PERCENTILE)
    chosen = sorted((s for s in squares if s[3] > MIN_LUMA and s[4] < flat), key=lambda s: s[4])
    args.out.mkdir(parents=True, exist_ok=True)
    taken: dict[str, int] = {}
    for src, tag, crop, _, _ in chosen:
        if taken.get(src, 0) < PER_SOURCE:
            taken[src] = taken.get(src, 0) + 1
            bgr = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(args.out / f"{src}_{tag}.png"), bgr)
    print(f"{sum(taken.values())} crops from {len(taken)} sources ({len(squares)} squares scored) "
          f"in {args.out}")
    return 0


if __name__ == "__main__":
    from vidstyle.errors import VidstyleError

    try:
        sys.exit(main())
    except (VidstyleError, OSError) as exc:
        print(f"bright_crops: {exc}", file=sys.stderr)
        sys.exit(1)
