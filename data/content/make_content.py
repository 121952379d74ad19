#!/usr/bin/env python3
"""Write the small shipped content set ``data/content/*.jpg`` from OpenCV's own test footage.

    python data/content/make_content.py [--data /usr/share/doc/opencv-doc/examples/data]

Stills for ``vidstyle train --quick`` (the default content, beside data/samples/vtest_4s.mp4): 12
frames of vtest.avi spread over its 79 s, away from the sample clip's seconds 20-24, scaled to
640x480, and 4 of the 68 frames of tree.avi (320x240, as they are). JPEG quality 88.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST_SECONDS = (1, 7, 13, 30, 36, 42, 48, 54, 60, 66, 72, 78)
TREE_FRAMES = (0, 22, 45, 67)


def frame_at(source: Path, index: int):
    capture = cv2.VideoCapture(str(source))   # read up to it: seeking is not exact in every file
    for _ in range(index + 1):
        ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"{source}: no frame {index}")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    for second in VTEST_SECONDS:
        frame = cv2.resize(frame_at(args.data / "vtest.avi", 10 * second), (640, 480),
                           interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(args.out / f"vtest_{second:02d}s.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 88])
    for index in TREE_FRAMES:
        frame = frame_at(args.data / "tree.avi", index)
        cv2.imwrite(str(args.out / f"tree_{index:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 88])


if __name__ == "__main__":
    main()
