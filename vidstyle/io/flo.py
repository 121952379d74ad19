"""Middlebury ``.flo`` optical-flow files, the format of MPI Sintel's and most benchmarks' ground truth.

Layout (little-endian): float32 tag 202021.25 (the bytes ``PIEH``), int32 width, int32 height, then
height * width * 2 float32: (u, v) per pixel, row-major, in pixels (u along x, v along y). Values of
1e9 and above mark unknown flow in some datasets; they are returned as they are.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from vidstyle.errors import FlowFileError
from vidstyle.fsutil import atomic_output

FLO_TAG = 202021.25
_HEADER_BYTES = 12
# Larger sides are a corrupt header, not a picture: refuse before allocating gigabytes.
_MAX_SIDE = 1 << 15


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a .flo file as float32 (H, W, 2) in pixels; FlowFileError (one line) when it is malformed.

    Only a regular file is read (a device such as /dev/zero never ends, a FIFO may never answer), and
    only after its header and its size agree: nothing is allocated for a size the file does not have.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise FlowFileError(f"cannot read flow file {path}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FlowFileError(f"{path} is not a regular file (a device, FIFO or folder), so not a .flo file")
    size = info.st_size
    with os.fdopen(fd, "rb") as f:
        try:
            header = f.read(_HEADER_BYTES)
            width, height = _check_header(path, header, size)
            raw = f.read(size - _HEADER_BYTES)
        except OSError as exc:
            raise FlowFileError(f"cannot read flow file {path}: {exc.strerror or exc}") from None
    if len(raw) != size - _HEADER_BYTES:
        raise FlowFileError(f"{path}: the file shrank while it was read")
    return np.frombuffer(raw, "<f4").reshape(height, width, 2).astype(np.float32)


def _check_header(path: Path, header: bytes, size: int) -> tuple[int, int]:
    """(width, height) from a .flo header, once the tag, the sides and the file's ``size`` agree."""
    if len(header) < _HEADER_BYTES:
        raise FlowFileError(f"{path} is not a .flo file: {size} bytes, shorter than the 12-byte header")
    tag = np.frombuffer(header, "<f4", count=1)[0]
    if tag != np.float32(FLO_TAG):
        raise FlowFileError(f"{path} is not a .flo file: header tag {header[:4]!r}, expected b'PIEH'")
    width, height = (int(v) for v in np.frombuffer(header, "<i4", count=2, offset=4))
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise FlowFileError(f"{path}: impossible flow size {width}x{height} in the header")
    expected = _HEADER_BYTES + 4 * 2 * width * height
    if size != expected:
        raise FlowFileError(f"{path}: {size} bytes, but a {width}x{height} flow needs {expected} "
                            "(truncated or not a .flo file)")
    return width, height


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> Path:
    """Write float (H, W, 2) flow in pixels as a .flo file, atomically; returns the path."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or 0 in flow.shape:
        raise FlowFileError(f"a .flo file holds an (H, W, 2) flow, got shape {flow.shape}")
    height, width = flow.shape[:2]
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(np.array([FLO_TAG], "<f4").tobytes())
            f.write(np.array([width, height], "<i4").tobytes())
            f.write(np.ascontiguousarray(flow, dtype="<f4").tobytes())
    return Path(path)
