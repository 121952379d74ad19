"""Ground-truth optical flow laid out as MPI Sintel ships it, for ``vidstyle metrics --gt-flow``.

Folders hold numbered files, numbered like the frames (Sintel: ``frame_0001.png`` ...):

- flow folder: ``frame_NNNN.flo``, the forward flow from frame NNNN to NNNN+1 on the grid of NNNN;
- occlusion / invalid folders (optional): ``frame_NNNN.png``, white (> 127) where a pixel of frame
  NNNN is occluded in NNNN+1 / has no valid flow.

A pair (t, t+K) is scored only when all K flows from t on exist; longer gaps chain them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vidstyle.errors import FlowFileError, VideoError
from vidstyle.io.flo import read_flo
from vidstyle.io.framefolder import IMAGE_EXTENSIONS, read_bytes, split_numbered

# Some datasets store "unknown" as flow components of 1e9 or more.
_UNKNOWN_FLOW = 1e9


def numbered_files(folder: str | os.PathLike, suffixes: Sequence[str]) -> dict[int, Path]:
    """The files of ``folder`` with one of ``suffixes`` whose names end in a number, by that number."""
    folder = Path(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise FlowFileError(f"cannot read folder {folder}: {exc.strerror or exc}") from None
    found: dict[int, Path] = {}
    for name in names:
        parts = split_numbered(name)
        if parts is None or parts[2] not in suffixes:
            continue
        number = parts[1]
        if number in found:
            raise FlowFileError(f"{folder} holds two files numbered {number}: "
                                f"{found[number].name} and {name}")
        found[number] = folder / name
    return found


def frame_numbers(input_path: str | os.PathLike, num_frames: int) -> list[int]:
    """The dataset number of each of the first ``num_frames`` input frames.

    A folder of frames keeps its own numbers (Sintel's start at 1); a video's frames are 1, 2, 3, ...
    """
    path = Path(input_path)
    if path.is_dir():
        return sorted(numbered_files(path, tuple(IMAGE_EXTENSIONS)))[:num_frames]
    return list(range(1, num_frames + 1))


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    try:    # decoded from bytes: cv2.imread crashes the process on a name that is not UTF-8
        data = read_bytes(path, f"mask {path}")
    except VideoError as exc:
        raise FlowFileError(str(exc)) from None
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise FlowFileError(f"cannot read mask {path}: not a readable image")
    if image.shape != shape:
        raise FlowFileError(f"{path} is {image.shape[1]}x{image.shape[0]}, the flow {shape[1]}x{shape[0]}")
    return image > 127


class GroundTruthFlow:
    """Forward flows and drop masks of one clip, read on demand (a few at a time, not the whole clip)."""

    def __init__(self, flow_dir: str | os.PathLike, occlusion_dir: str | os.PathLike | None = None,
                 invalid_dir: str | os.PathLike | None = None):
        self.flow_dir = str(flow_dir)
        self.occlusion_dir = str(occlusion_dir) if occlusion_dir else None
        self.invalid_dir = str(invalid_dir) if invalid_dir else None
        self.flows = numbered_files(flow_dir, (".flo",))
        if not self.flows:
            raise FlowFileError(f"{flow_dir} holds no numbered .flo files (such as frame_0001.flo)")
        self.masks = [numbered_files(d, (".png",)) for d in (occlusion_dir, invalid_dir) if d]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def step(self, number: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow float32 (H, W, 2), drop bool (H, W)) from frame ``number`` to the next; None without a .flo.

        ``drop`` marks pixels occluded, invalid or with unknown flow. FlowFileError when the flow is
        not (height, width) or a mask the flow needs is missing.
        """
        if number not in self.flows:
            return None
        if number not in self._cache:
            self._cache = {n: v for n, v in self._cache.items() if n > number - 64}
            self._cache[number] = self._load(number, height, width)
        return self._cache[number]

    def _load(self, number: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.flows[number]
        flow = read_flo(path)
        if flow.shape[:2] != (height, width):
            raise FlowFileError(f"{path} is {flow.shape[1]}x{flow.shape[0]} "
                                f"but the frames are {width}x{height}")
        drop = ~(np.abs(flow) < _UNKNOWN_FLOW).all(axis=-1)
        for masks, folder in zip(self.masks, (d for d in (self.occlusion_dir, self.invalid_dir) if d)):
            if number not in masks:
                raise FlowFileError(f"{folder} has no mask numbered {number} for {path.name}")
            drop |= _read_mask(masks[number], (height, width))
        return flow, drop

    def pair(self, number: int, gap: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Flow from frame ``number`` to ``number + gap`` and the pixels to keep, or None (a flow is
        missing)."""
        steps = [self.step(number + k, height, width) for k in range(gap)]
        return None if any(s is None for s in steps) else chain(steps)


def _inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    height, width = x.shape
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def chain(steps: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Compose consecutive forward flows into one, from the first frame to the last.

    ``steps``: (flow float32 (H, W, 2), drop bool (H, W)) per step, each on the grid of its own
    first frame. Returns (flow (H, W, 2) on the first frame's grid, keep bool (H, W)): a pixel is
    kept when no step drops it and its path stays inside the frame. Later flows and masks are read
    where the path lands (bilinear for flow, nearest for masks).
    """
    flow, drop = steps[0]
    height, width = drop.shape
    if len(steps) == 1:      # exact: no round trip through absolute coordinates
        x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        return flow, ~drop & _inside(x + flow[..., 0], y + flow[..., 1])
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    keep = ~drop & _inside(x, y)
    for flow, drop in steps[1:]:
        moved = cv2.remap(flow, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        dropped = cv2.remap(drop.astype(np.uint8), x, y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=1)
        x, y = x + moved[..., 0], y + moved[..., 1]
        keep &= (dropped == 0) & _inside(x, y)
    return np.stack([x - gx, y - gy], axis=-1), keep
