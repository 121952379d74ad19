"""Frame folders: a clip stored as numbered images (``00001.png``, ``frame_12.jpg``), read with OpenCV.

Frames are numpy uint8 RGB (H, W, 3). A folder carries no frame rate; it is given FOLDER_FPS.
Every failure is a ``VideoError`` naming the folder or file; OpenCV errors never escape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from vidstyle.errors import VideoError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
FOLDER_FPS = 24.0  # a folder of frames carries no rate; this is the one it is given
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def split_numbered(name: str) -> tuple[str, int, str] | None:
    """(prefix, number, lower-case extension) of a file name whose stem ends in a number
    (``frame_12.JPG`` -> ("frame_", 12, ".jpg")); None for other names and hidden files."""
    stem, ext = os.path.splitext(name)
    match = _NUMBERED.match(stem)
    if match is None or name.startswith("."):
        return None
    return match[1], int(match[2]), ext.lower()


def numbered_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` whose names end in a number, sorted by that number.

    When names form several sequences (``a_001.png`` and ``b_001.png``), the longest is taken.
    """
    try:
        names = os.listdir(folder)
    except OSError as error:
        raise VideoError(f"cannot read folder {folder}: {error.strerror or error}") from error
    sequences: dict[tuple[str, str], dict[int, str]] = {}
    for name in names:
        parts = split_numbered(name)
        if parts is None or parts[2] not in IMAGE_EXTENSIONS:
            continue
        prefix, number, ext = parts
        numbers = sequences.setdefault((prefix, ext), {})
        if number in numbers:
            raise VideoError(f"{folder} holds two frames numbered {number}: {numbers[number]} and {name}")
        numbers[number] = name
    if not sequences:
        return []
    longest = max(sequences.values(), key=len)
    return [folder / longest[n] for n in sorted(longest)]


def read_image(file: Path) -> np.ndarray:
    """One frame: uint8 RGB (H, W, 3), as stored (a view of OpenCV's BGR array)."""
    data = read_bytes(file, f"frame {file}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise VideoError(f"cannot read frame {file}: not a readable image")
    return image[..., ::-1]


def read_bytes(file: Path, what: str) -> np.ndarray:
    """A file's bytes as uint8 (N,), for cv2.imdecode: cv2.imread takes names as UTF-8 and crashes
    the process on a name that is not (``bad\\xff.png``). VideoError naming ``what`` if unreadable."""
    try:
        return np.fromfile(file, np.uint8)
    except OSError as error:
        raise VideoError(f"cannot read {what}: {error.strerror or error}") from error


def iter_images(folder: Path, first: int, stop: int, same_size: bool = True) -> Iterator[np.ndarray]:
    """Frames ``first .. stop - 1`` of a frame folder in order, uint8 RGB (H, W, 3).

    With ``same_size``, a frame whose size differs from the first one read is a VideoError (a
    caller that resizes every frame passes False).
    """
    shape = None
    for file in numbered_images(folder)[first:stop]:
        frame = read_image(file)
        if same_size and shape is not None and frame.shape != shape:
            raise VideoError(f"frame {file} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the first frame is {shape[1]}x{shape[0]}")
        shape = frame.shape
        yield frame
