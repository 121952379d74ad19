"""Writing the HDF5 clip file (format and schema: :mod:`vidstyle.flow.flowstore`).

A file is written under a unique ``<name>.<random>.tmp``, with its space reserved first, and renamed
only when every frame and pair is in it and reads back exactly as written (checksums), so a file
that exists under its final name is whole even when the disk filled up on the way.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vidstyle.errors import FlowFileError
from vidstyle.flow.flowstore import (
    DEFAULT_COMPRESSION,
    FORMAT,
    REQUIRED_ATTRS,
    check_size,
    dataset_layout,
    optional_layout,
)
from vidstyle.flow.pairstats import frame_std, pair_statistics
from vidstyle.fsutil import atomic_output
from vidstyle.io.h5safety import reserve_space, storage_error, temp_path


class FlowFileWriter:
    """Write one clip file; it appears under ``path`` only if the ``with`` block ends cleanly and
    the file then reads back exactly as written.

    ``num_frames`` is an upper bound: a clip whose decoder delivers fewer frames is trimmed to the
    frames and pairs actually written, which must be contiguous from 0. Pair t is written after
    frame t+1 (its statistics need both frames). A failed write raises FlowFileError.
    """

    def __init__(self, path: str | os.PathLike, *, num_frames: int, height: int, width: int,
                 attrs: dict[str, Any], compression: str | dict | None = DEFAULT_COMPRESSION):
        if num_frames < 2:
            raise FlowFileError(f"{path}: a clip needs at least 2 frames, got {num_frames}")
        check_size(path, num_frames, height, width)   # a file no reader would open
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self._capacity = int(num_frames)
        self._attrs = dict(attrs)
        self._compression = (compression if isinstance(compression, dict)
                             else dict.fromkeys(DEFAULT_COMPRESSION, compression))
        self._frames_written = 0
        self._pairs_written = 0
        self._recent: dict[int, np.ndarray] = {}    # the last two frames, for the pair statistics
        self._stats: dict[str, list] = {name: [] for name in optional_layout(0)}
        self._checksums: dict[str, list[int]] = {name: [] for name in DEFAULT_COMPRESSION}
        self._atomic = None
        self._tmp: Path | None = None
        self._h5 = None

    def __enter__(self) -> FlowFileWriter:
        self._atomic = atomic_output(self.path, tmp=temp_path(self.path))
        self._tmp = self._atomic.__enter__()
        with self._abandon_on_failure():
            self._h5 = h5py.File(self._tmp, "w")
            layout = dataset_layout(self._capacity, self.height, self.width)
            for name, (dtype, shape) in layout.items():
                self._h5.create_dataset(
                    name, shape=shape, maxshape=(None, *shape[1:]), dtype=dtype,
                    chunks=(1, *shape[1:]), compression=self._compression.get(name),
                )
            data_bytes = sum(dtype.itemsize * int(np.prod(shape)) for dtype, shape in layout.values())
            reserve_space(self._tmp, int(1.01 * data_bytes) + (1 << 20))
        return self

    @contextlib.contextmanager
    def _abandon_on_failure(self) -> Iterator[None]:
        """Any failure inside throws the temporary file away; storage failures (disk full, I/O
        errors) become one FlowFileError naming the output."""
        try:
            yield
        except (OSError, RuntimeError) as failure:
            error = storage_error(self.path, failure)
            self._abort(error)
            raise error from None
        except BaseException as failure:
            self._abort(failure)
            raise

    def write_frame(self, t: int, frame: np.ndarray) -> None:
        """Store frame ``t``: uint8 RGB (H, W, 3). Frames must come in order 0, 1, 2, ..."""
        self._check_index("frame", t, self._frames_written)
        self._check_shape("frame", frame, (self.height, self.width, 3))
        self._store("frames", t, np.asarray(frame, dtype=np.uint8))
        self._stats["frame_std"].append(frame_std(frame))
        self._recent = {k: v for k, v in self._recent.items() if k == t - 1} | {t: frame}
        self._frames_written += 1

    def write_pair(self, t: int, flow_fw: np.ndarray, flow_bw: np.ndarray, mask: np.ndarray) -> None:
        """Store pair ``t`` (frames t, t+1): flows (H, W, 2) in pixels, mask (H, W) of 0/1."""
        self._check_index("pair", t, self._pairs_written)
        if t + 1 >= self._frames_written:
            raise FlowFileError(f"{self.path}: pair {t} written before frame {t + 1}")
        self._check_shape("flow_fw", flow_fw, (self.height, self.width, 2))
        self._check_shape("flow_bw", flow_bw, (self.height, self.width, 2))
        self._check_shape("mask", mask, (self.height, self.width))
        stored_bw = flow_bw.astype(np.float16)
        mask = (mask > 0).astype(np.uint8)
        self._store("flow_fw", t, flow_fw.astype(np.float16))
        self._store("flow_bw", t, stored_bw)
        self._store("mask", t, mask)
        # Judged on the flow as stored, so that FlowFile.pair_info of a file without these datasets
        # recomputes exactly the same values.
        valid, cut = pair_statistics(self._frame(t), self._frame(t + 1), stored_bw.astype(np.float32), mask)
        self._stats["valid_fraction"].append(valid)
        self._stats["cut"].append(cut)
        self._pairs_written += 1

    def _frame(self, t: int) -> np.ndarray:
        return self._recent[t] if t in self._recent else self._h5["frames"][t]

    def _store(self, name: str, t: int, array: np.ndarray) -> None:
        try:
            self._h5[name][t] = array
        except (OSError, RuntimeError) as exc:
            raise storage_error(self.path, exc) from None
        self._checksums[name].append(zlib.crc32(np.ascontiguousarray(array)))

    def _check_index(self, what: str, t: int, expected: int) -> None:
        if t != expected:
            raise FlowFileError(f"{self.path}: {what} {t} written out of order (expected {expected})")
        if t >= self._capacity:
            raise FlowFileError(f"{self.path}: {what} {t} beyond the {self._capacity} frames declared")

    def _check_shape(self, what: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
        if array.shape != shape:
            raise FlowFileError(f"{self.path}: {what} has shape {array.shape}, expected {shape}")

    def _finish(self) -> None:
        frames, pairs = self._frames_written, self._pairs_written
        if frames < 2 or pairs != frames - 1:
            raise FlowFileError(
                f"{self.path}: incomplete clip: {frames} frames and {pairs} pairs written")
        if frames < self._capacity:
            for name in ("frames", "flow_fw", "flow_bw", "mask"):
                self._h5[name].resize(frames if name == "frames" else pairs, axis=0)
        for name, (dtype, _) in optional_layout(frames).items():
            self._h5.create_dataset(name, data=np.asarray(self._stats[name], dtype=dtype))
        attrs = {**self._attrs, "format": FORMAT, "num_frames": frames,
                 "height": self.height, "width": self.width}
        for key, value in attrs.items():
            self._h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        missing = [key for key in REQUIRED_ATTRS if key not in self._h5.attrs]
        if missing:
            raise FlowFileError(f"{self.path}: missing attributes {', '.join(missing)}")

    def _close_and_verify(self) -> None:
        """Close, force the bytes to storage, and read every chunk back: HDF5 can lose the write of
        a chunk evicted from its cache when the disk is full, yet close the file without error."""
        h5, self._h5 = self._h5, None
        h5.close()
        with open(self._tmp, "r+b") as f:
            f.truncate(os.fstat(f.fileno()).st_size)   # give back the reserved blocks not used
            os.fsync(f.fileno())
        with h5py.File(self._tmp, "r") as h5:
            lost = [f"{name}[{t}]" for name, sums in self._checksums.items()
                    for t, expected in enumerate(sums)
                    if t >= len(h5[name]) or zlib.crc32(np.ascontiguousarray(h5[name][t])) != expected]
            lost += [name for name, (dtype, _) in optional_layout(0).items()
                     if not np.array_equal(h5[name][()], np.asarray(self._stats[name], dtype=dtype))]
            lost += [f"attribute {key}" for key in REQUIRED_ATTRS if key not in h5.attrs]
        if lost:
            raise FlowFileError(f"{self.path}: the file did not read back as written ({lost[0]}"
                                f"{f' and {len(lost) - 1} more' if len(lost) > 1 else ''}; disk full?)")

    def _abort(self, exc: BaseException) -> None:
        if self._h5 is not None:
            h5, self._h5 = self._h5, None
            try:
                h5.close()
            except (OSError, RuntimeError):
                pass  # the file is thrown away because a write already failed
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self._abort(exc)
            return False
        with self._abandon_on_failure():
            self._finish()
            self._close_and_verify()
        self._atomic.__exit__(None, None, None)
        return False


def write_clip(path: str | os.PathLike, frames: np.ndarray, flows_fw: np.ndarray,
               flows_bw: np.ndarray, masks: np.ndarray, attrs: dict[str, Any],
               compression: str | dict | None = DEFAULT_COMPRESSION) -> Path:
    """Write a whole clip held in memory (tests, small tools). Arrays as in the module docstring."""
    frames = np.asarray(frames)
    num_frames, height, width = frames.shape[:3]
    with FlowFileWriter(path, num_frames=num_frames, height=height, width=width, attrs=attrs,
                        compression=compression) as out:
        for t in range(num_frames):
            out.write_frame(t, frames[t])
            if t > 0:
                out.write_pair(t - 1, flows_fw[t - 1], flows_bw[t - 1], masks[t - 1])
    return Path(path)
