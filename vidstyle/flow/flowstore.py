"""The HDF5 clip file, format ``vidstyle-flow/1``: schema, lazy reader, validation (the writer is
:mod:`vidstyle.flow.flowwriter`).

One file per clip (see docs/flows.md, "Flow files")::

    frames   uint8   (T, H, W, 3)    RGB frames the flow was computed on
    flow_fw  float16 (T-1, H, W, 2)  flow t -> t+1 on the grid of t, pixels (dx, dy)
    flow_bw  float16 (T-1, H, W, 2)  flow t+1 -> t on the grid of t+1
    mask     uint8   (T-1, H, W)     1 where warp(frame_t, flow_bw) is a reliable estimate of frame t+1
  and, in files written since they were added (optional, see ``vidstyle.flow.pairstats``):
    valid_fraction float32 (T-1,)  fraction of mask == 1 per pair
    cut            uint8   (T-1,)  1 where pair t -> t+1 spans a scene cut
    frame_std      float32 (T,)    standard deviation of each frame's luma in [0, 1]

A file is written under a unique ``<name>.<random>.tmp`` and renamed only when every frame and pair
is in it and reads back exactly as written, so a file that exists under its final name is whole even
when the disk filled up on the way. Each frame or pair is one chunk, so reading pair t touches only
pair t's bytes. Files that point outside themselves (external storage, virtual datasets, soft or
external links) are refused: a flow file must never make its reader open another file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vidstyle.errors import FlowFileError
from vidstyle.flow.pairstats import PairInfo, frame_std, pair_statistics
from vidstyle.io.h5safety import check_self_contained

FORMAT = "vidstyle-flow/1"
REQUIRED_ATTRS = (
    "format", "source", "source_size", "source_mtime", "fps", "num_frames", "height", "width",
    "flow_method", "flow_params", "created", "vidstyle_version",
)
# Chosen with benchmarks/flow_bench.py (docs/flows.md, "Compression": bytes and times per dataset): lzf
# shrinks the mask many times over, but barely the frames and not the float16 flows (noisy low
# bits), at several times the write and read time. So only the mask is compressed. A str or None
# applies one choice to every dataset.
DEFAULT_COMPRESSION = {"frames": None, "flow_fw": None, "flow_bw": None, "mask": "lzf"}
# What a reader accepts before it reads a byte of the data: a file can declare any shape in a few
# kilobytes (chunks never written read as zeros), and one 20000x20000 pair is gigabytes. 8K video
# (7680x4320) is the largest frame anyone trains on; a million frames is over nine hours at 30 fps.
MAX_SIDE = 8192
MAX_PIXELS = 7680 * 4320
MAX_FRAMES = 1_000_000


def dataset_layout(num_frames: int, height: int, width: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Dataset name -> (dtype, shape) for a clip of ``num_frames`` frames of ``height`` x ``width``."""
    pairs = max(num_frames - 1, 0)
    return {
        "frames": (np.dtype(np.uint8), (num_frames, height, width, 3)),
        "flow_fw": (np.dtype(np.float16), (pairs, height, width, 2)),
        "flow_bw": (np.dtype(np.float16), (pairs, height, width, 2)),
        "mask": (np.dtype(np.uint8), (pairs, height, width)),
    }


def optional_layout(num_frames: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """The per-pair and per-frame statistics: optional, so files written before them stay valid."""
    pairs = max(num_frames - 1, 0)
    return {
        "valid_fraction": (np.dtype(np.float32), (pairs,)),
        "cut": (np.dtype(np.uint8), (pairs,)),
        "frame_std": (np.dtype(np.float32), (num_frames,)),
    }


@dataclass
class FlowPair:
    """Consecutive frames t, t+1 with their flows (float32, pixels) and mask (uint8, grid of t+1)."""

    frame_t: np.ndarray
    frame_t1: np.ndarray
    flow_fw: np.ndarray
    flow_bw: np.ndarray
    mask: np.ndarray


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _read_attrs(h5: h5py.File, path: Path) -> dict[str, Any]:
    """The root attributes, text decoded; FlowFileError naming the first that cannot be read."""
    attrs = {}
    for key in h5.attrs:
        try:
            attrs[key] = _decode_attr(h5.attrs[key])
        except (UnicodeDecodeError, OSError, TypeError, ValueError):
            raise FlowFileError(f"{path}: attribute {key!r} cannot be read (not text or a number)") from None
    return attrs


def _whole_number(attrs: dict[str, Any], key: str, path: Path) -> int:
    value = attrs[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlowFileError(f"{path}: attribute {key!r} must be a whole number, not {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def check_size(path: str | os.PathLike, num_frames: int, height: int, width: int) -> None:
    """FlowFileError for a clip beyond MAX_FRAMES, MAX_SIDE or MAX_PIXELS (or of no size)."""
    if not (0 <= num_frames <= MAX_FRAMES and 0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE
            and height * width <= MAX_PIXELS):
        raise FlowFileError(f"{path}: declares {num_frames} frames of {width}x{height}; a flow file holds "
                            f"at most {MAX_FRAMES} frames of at most {MAX_SIDE} pixels a side and "
                            f"{MAX_PIXELS} in all")


def _check_layout(h5: h5py.File, path: Path, num_frames: int, height: int, width: int) -> None:
    """FlowFileError unless every dataset has the dtype and shape the attributes declare (the
    optional statistics where present). Reads only metadata."""
    optional = optional_layout(num_frames)
    for name, (dtype, shape) in {**dataset_layout(num_frames, height, width), **optional}.items():
        if name not in h5:
            if name in optional:
                continue
            raise FlowFileError(f"{path}: dataset {name!r} is missing")
        data = h5[name]
        if not isinstance(data, h5py.Dataset) or data.dtype != dtype or data.shape != shape:
            found = f"{data.dtype} {data.shape}" if isinstance(data, h5py.Dataset) else "a group"
            raise FlowFileError(f"{path}: dataset {name!r} is {found}, expected {dtype} {shape}")


def _open_h5(path: Path) -> h5py.File:
    if not path.is_file():
        raise FlowFileError(f"{path}: no such flow file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise FlowFileError(f"{path}: not a readable HDF5 file (truncated or foreign): {exc}") from None
    try:
        check_self_contained(h5)
    except BaseException:
        h5.close()
        raise
    return h5


class FlowFile:
    """Read a clip file. The HDF5 handle opens on first use and reopens in a forked process, so one
    instance can be handed to DataLoader workers."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._stats: tuple[np.ndarray, ...] | None = None
        try:
            self._check_header()
        except BaseException:
            self.close()
            raise

    def _check_header(self) -> None:
        """Read and check the attributes, then the datasets' shapes against them (metadata only):
        what a file declares must be what it holds, and of a size worth reading."""
        h5, path = self._file(), self.path
        self.attrs = _read_attrs(h5, path)
        fmt = self.attrs.get("format")
        if fmt != FORMAT:
            raise FlowFileError(f"{path}: not a {FORMAT} file (format attribute: {_shown(fmt)})")
        missing = [key for key in REQUIRED_ATTRS if key not in self.attrs]
        if missing:
            raise FlowFileError(f"{path}: missing attributes {', '.join(missing)}")
        self.num_frames, self.height, self.width = (_whole_number(self.attrs, key, path)
                                                    for key in ("num_frames", "height", "width"))
        fps = self.attrs["fps"]
        if isinstance(fps, bool) or not isinstance(fps, (int, float)):
            raise FlowFileError(f"{path}: attribute 'fps' must be a number, not {_shown(fps)}")
        self.fps = float(fps)
        check_size(path, self.num_frames, self.height, self.width)
        _check_layout(h5, path, self.num_frames, self.height, self.width)

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = _open_h5(self.path)
            self._pid = os.getpid()
        return self._h5

    @property
    def num_pairs(self) -> int:
        return self.num_frames - 1

    def __len__(self) -> int:
        return self.num_pairs

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t``: uint8 RGB (H, W, 3)."""
        return self._read("frames", t, self.num_frames)

    def pair(self, t: int) -> FlowPair:
        """Pair ``t``: frames t and t+1, flows as float32 pixels, mask uint8 on the grid of t+1."""
        return FlowPair(
            frame_t=self.frame(t),
            frame_t1=self.frame(t + 1),
            flow_fw=self._read("flow_fw", t, self.num_pairs).astype(np.float32),
            flow_bw=self._read("flow_bw", t, self.num_pairs).astype(np.float32),
            mask=self._read("mask", t, self.num_pairs),
        )

    def pair_info(self, t: int) -> PairInfo:
        """What training needs to judge pair ``t`` (``vidstyle.flow.pairstats.PairInfo``): the stored
        statistics, or, in a file written before they were stored, the same computed from the pair."""
        if not 0 <= t < self.num_pairs:
            raise IndexError(f"pair index {t} out of range 0..{self.num_pairs - 1}")
        stored = self._stored_stats()
        if stored:
            valid, cut, std = stored
            return PairInfo(float(valid[t]), bool(cut[t]), float(std[t]), float(std[t + 1]))
        pair = self.pair(t)
        valid, cut = pair_statistics(pair.frame_t, pair.frame_t1, pair.flow_bw, pair.mask)
        return PairInfo(valid, cut, frame_std(pair.frame_t), frame_std(pair.frame_t1))

    def _stored_stats(self) -> tuple[np.ndarray, ...]:
        """(valid_fraction, cut, frame_std) read once (a few bytes per pair), or () if not stored."""
        if self._stats is None:
            h5, names = self._file(), list(optional_layout(0))
            try:
                self._stats = tuple(h5[name][()] for name in names) if all(n in h5 for n in names) else ()
            except OSError as exc:
                raise FlowFileError(f"{self.path}: cannot read the pair statistics: {exc}") from None
        return self._stats

    def _read(self, name: str, t: int, count: int) -> np.ndarray:
        if not 0 <= t < count:
            raise IndexError(f"{name} index {t} out of range 0..{count - 1}")
        try:
            return self._file()[name][t]
        except (OSError, KeyError) as exc:
            raise FlowFileError(f"{self.path}: cannot read {name}[{t}]: {exc}") from None

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __enter__(self) -> FlowFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_h5": None, "_pid": None}


def validate(path: str | os.PathLike, check_values: bool = True) -> dict[str, Any]:
    """Check a clip file completely; return its attributes, or raise FlowFileError saying what is wrong.

    Checks the format tag, every required attribute (types and sizes too), each dataset's dtype and
    shape against the attributes, and (``check_values``) that every chunk decodes, flows are finite
    and masks are 0/1.
    """
    path = Path(path)
    with FlowFile(path) as clip:   # the attributes and every dataset's dtype and shape are checked here
        if clip.num_frames < 2:
            raise FlowFileError(f"{path}: {clip.num_frames} frames; a clip needs at least 2")
        if check_values:
            _check_values(clip)
        return dict(clip.attrs)


def _check_values(clip: FlowFile) -> None:
    """Decode every chunk once: a truncated file fails here, and flows must be finite, masks 0/1."""
    for name, count in (("frames", clip.num_frames), ("flow_fw", clip.num_pairs),
                        ("flow_bw", clip.num_pairs), ("mask", clip.num_pairs)):
        for t in range(count):
            chunk = clip._read(name, t, count)
            if name.startswith("flow") and not np.isfinite(chunk).all():
                raise FlowFileError(f"{clip.path}: {name}[{t}] holds NaN or infinite values")
            if name == "mask" and chunk.max(initial=0) > 1:
                raise FlowFileError(f"{clip.path}: mask[{t}] holds values other than 0 and 1")
    if clip._stored_stats():
        valid, cut, std = clip._stored_stats()
        in_range = (np.all((valid >= 0) & (valid <= 1)) and np.all(cut <= 1)
                    and np.all((std >= 0) & (std <= 1)))
        if not in_range:  # NaN fails the comparisons too
            raise FlowFileError(f"{clip.path}: pair statistics out of range "
                                "(valid_fraction, cut or frame_std)")


def find_flow_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Flow files named directly or found (``*.h5``, not recursively) in the folders given."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found.extend(sorted(entry.glob("*.h5")))
        elif entry.is_file():
            found.append(entry)
        else:
            raise FlowFileError(f"{entry}: no such flow file or folder")
    if not found:
        raise FlowFileError(f"no flow files (*.h5) in {', '.join(map(str, paths))}")
    return found
