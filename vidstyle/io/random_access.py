"""Random access to a clip's frames: ``read_frames(path, indices)``.

Nothing in the inference or training path needs it (they stream with :func:`vidstyle.io.video.iter_frames`
or read the HDF5 clip files); it serves scripts that pick frames here and there. Video files are read
with decord, an optional dependency (``pip install "vidstyle[decord]"``); frame folders and animated
images need nothing.
Whether decord pays against PyAV: docs/benchmarks.md, "Random access to frames"
(benchmarks/random_access_bench.py).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidstyle.errors import ConfigError, VideoError
from vidstyle.io.framefolder import numbered_images, read_image
from vidstyle.io.video import VideoInfo, check_size, iter_frames, probe, upright_resized

DECORD_EXTRA = 'random access to video files needs decord: pip install "vidstyle[decord]"'


def read_frames(path: str | os.PathLike, indices: Sequence[int] | np.ndarray,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """Frames at ``indices`` (in that order, repeats allowed): uint8 RGB (N, H, W, 3), upright,
    resized like iter_frames. Random access: decord for files, one image read each for folders.

    Files decord cannot read, rotated and interlaced files, and files whose count decord disagrees
    with probe on (mp4 edit lists) are decoded with PyAV from the first frame up to the last index instead:
    correct, but O(last index) per call. Indices outside [0, num_frames) raise VideoError; an
    unrotated video file without decord installed raises ConfigError naming the extra.
    """
    size = check_size(size)
    info = probe(path)
    wanted = [int(i) for i in np.asarray(indices).reshape(-1)]
    for i in wanted:
        if not 0 <= i < info.num_frames:
            raise VideoError(f"frame {i} is outside {path} (frames 0..{info.num_frames - 1})")
    if not wanted:
        shape = size[::-1] if size else (info.height, info.width)
        return np.empty((0, *shape, 3), np.uint8)
    if info.is_frame_folder:
        files = numbered_images(Path(path))
        frames = [upright_resized(read_image(files[i]), 0, size) for i in wanted]
    elif info.is_animation or info.interlaced:  # frames made from those around them: read in order
        frames = _read_by_decoding(path, wanted, size)
    else:
        frames = _read_with_decord(path, info, wanted, size) or _read_by_decoding(path, wanted, size)
    return np.stack(frames)


def _import_decord():
    try:
        import decord  # noqa: PLC0415  (optional: only random access to video files needs it)
    except ImportError:
        raise ConfigError(DECORD_EXTRA) from None
    return decord


@functools.lru_cache(maxsize=4)
def _decord_reader(decord, path: str, _mtime_ns: int, _size: int, _pid: int, _thread: int):
    """A decord VideoReader kept open across calls, one per process and thread: a reader is not
    safe to share between threads, and its decoder threads do not survive a fork."""
    try:
        return decord.VideoReader(path, ctx=decord.cpu(0))
    except Exception:  # decord raises its own DECORDError, IndexError or RuntimeError on bad files
        return None


def _read_with_decord(path, info: VideoInfo, wanted: list[int], size) -> list[np.ndarray] | None:
    if info.rotation:
        return None  # decord turns some rotations itself and fails on others (180, any in .mkv)
    stat = os.stat(path)
    reader = _decord_reader(_import_decord(), str(path), stat.st_mtime_ns, stat.st_size, os.getpid(),
                            threading.get_ident())
    if reader is None or len(reader) != info.num_frames:
        return None
    try:
        batch = reader.get_batch(wanted).asnumpy()
    except Exception:  # decord's errors have no common base; PyAV decoding is the fallback
        return None
    return [upright_resized(frame, 0, size) for frame in batch]


def _read_by_decoding(path, wanted: list[int], size) -> list[np.ndarray]:
    needed = set(wanted)
    found = {}
    for index, frame in enumerate(iter_frames(path, size=size, max_frames=max(wanted) + 1)):
        if index in needed:
            found[index] = frame
    return [found[i] for i in wanted]
