"""Animated images (GIF, WebP, PNG/APNG, AVIF of more than one frame), read as clips with Pillow.

A still image of these formats is a photo; an animated one is a clip, whose frames are numpy uint8
RGB (H, W, 3) as Pillow composes them (each frame whole, transparency dropped) and whose times come
from the frames' own durations. Failures reach the caller as ``VideoError`` naming the file.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from vidstyle.errors import VideoError

# Suffixes of formats that can hold an animation; the file's content decides whether it does.
ANIMATED_SUFFIXES = frozenset({".gif", ".webp", ".png", ".apng", ".avif"})
# Pillow formats read as animations. Not TIFF pages nor MPO (a camera's JPEG with a second,
# stereo or depth, picture): those are photos.
_ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG", "AVIF"})
# Browsers show a frame of 0 or 10 ms (GIF's "as fast as possible") for 100 ms; so does this reader.
SHORTEST_FRAME_MS = 20
DEFAULT_FRAME_MS = 100


def _open(path) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def is_animation(path: str | os.PathLike) -> bool:
    """True for a file Pillow reads as a GIF, WebP, PNG or AVIF of more than one frame, whatever
    its name; False for everything else, unreadable files included (their reader says why)."""
    try:
        if not Path(path).is_file():
            return False
        with _open(path) as image:
            return image.format in _ANIMATED_FORMATS and bool(getattr(image, "is_animated", False))
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def frame_durations(path: str | os.PathLike) -> tuple[tuple[int, int], np.ndarray]:
    """(width, height) and each frame's display time in seconds, float64 (N,).

    A duration under SHORTEST_FRAME_MS (or none) counts as DEFAULT_FRAME_MS, as in browsers.
    Cached per (path, modification time, size): WebP tells a frame's duration only by decoding it.
    """
    try:
        stat = os.stat(path)
    except OSError as error:
        raise VideoError(f"cannot read animation {path}: {error.strerror or error}") from error
    size, milliseconds = _durations(str(path), stat.st_mtime_ns, stat.st_size)
    return size, np.asarray(milliseconds, np.float64) / 1000.0


@functools.lru_cache(maxsize=16)
def _durations(path: str, _mtime_ns: int, _size: int) -> tuple[tuple[int, int], tuple[float, ...]]:
    try:
        with _open(path) as image:
            size, durations = image.size, []
            for index in range(image.n_frames):
                image.seek(index)
                if "duration" not in image.info:
                    image.load()    # WebP sets a frame's duration when it decodes it
                milliseconds = image.info.get("duration") or 0
                durations.append(milliseconds if milliseconds >= SHORTEST_FRAME_MS else DEFAULT_FRAME_MS)
    except (OSError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise VideoError(f"cannot read animation {path}: {error}") from error
    return size, tuple(float(d) for d in durations)


def iter_animation_frames(path: str | os.PathLike, first: int, stop: int) -> Iterator[np.ndarray]:
    """Frames ``first .. stop - 1`` in order, uint8 RGB (H, W, 3), each whole as displayed."""
    try:
        with _open(path) as image:
            for index in range(first, min(stop, image.n_frames)):
                image.seek(index)
                yield np.array(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, EOFError) as error:
        raise VideoError(f"cannot read animation {path}: {error}") from error
