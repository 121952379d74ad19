"""Training pairs: consecutive frames with their backward flow and mask, from flow files and photos.

An item is a dict of float32 tensors for one pair (frames t and t+1)::

    frame_t, frame_t1   (3, S, S)  RGB in [0, 1]
    flow_bw             (2, S, S)  pixels (dx, dy), from t+1 to t on the grid of t+1
    mask                (1, S, S)  1 where warp(frame_t, flow_bw) is a reliable estimate of frame_t1

S is the crop size. Augmentation keeps the four consistent (RAFT-style): one random scale resizes
frames, flow (whose vectors are multiplied by the same factor) and mask; one random crop cuts all four;
a horizontal flip mirrors all four and negates the flow's x component. After cropping, pixels whose
flow points outside the crop are masked out, since the warp there can only repeat the crop's border.

Still photos become pairs too: frame t is a view of the photo, frame t+1 the same view after a small
random camera motion (shift, zoom, rotation about the centre), so flow_bw is known exactly and the mask
is 0 only where frame t+1 shows what frame t did not.

Randomness is a pure function of ``(seed, draw)``: :class:`DrawSampler` hands out ``(index, draw)``
keys whose draw number is the position in the training stream, so a run resumed at step k sees exactly
the samples and augmentations of an uninterrupted one, with any number of loader workers or ranks.
Sampling is with replacement; it needs no epoch bookkeeping and mixes photos and video at any ratio.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vidstyle.errors import ConfigError
from vidstyle.flow.flowstore import FlowFile, find_flow_files, validate
from vidstyle.flow.pairstats import frame_std
from vidstyle.io.images import read_image

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Photos are kept in memory at most this many crop sizes on their shorter side: enough for the
# zoom range of a view, and it bounds the cache.
_PHOTO_SIDE_IN_CROPS = 2.0
# A crop whose luma varies less than this (standard deviation, [0, 1]) is all but constant: a black
# frame, a letterbox bar, a blank sky. Instance norm divides by that spread, so through the network's
# stacked norms the gradient of such a crop grows by ~1/sqrt(eps) a layer and overflows (NaN).
MIN_CROP_STD = 0.01
# A pair (or crop) whose reliable-flow share is below this has too little to learn about temporal
# consistency; scene cuts are skipped by the flow file's own cut flag (vidstyle.flow.pairstats).
MIN_VALID_FRACTION = 0.2
# Tries to find a usable crop of one pair (then the next pair is tried), so that a clip of black
# frames cannot stall the stream.
_CROP_TRIES = 8


@dataclass(frozen=True)
class CameraMotion:
    """Range of the random motion that turns a photo into a pair (uniform in each, about the centre)."""

    max_shift: float = 6.0       # pixels, each axis
    max_zoom: float = 0.04       # relative, e.g. 0.04: 0.96x .. 1.04x
    max_rotation: float = 2.0    # degrees


def find_photos(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files (``PHOTO_SUFFIXES``) in the folders given (not recursive), sorted; ConfigError if none."""
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such photo folder")
        found.extend(sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES))
    if not found:
        raise ConfigError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {', '.join(map(str, folders))}")
    return found


@functools.lru_cache(maxsize=256)
def _load_photo(path: str, max_short_side: int) -> np.ndarray:
    """uint8 RGB photo, shrunk (area interpolation) so its shorter side is at most ``max_short_side``."""
    image = read_image(path, "photo")   # from bytes: any file name; ConfigError, one line
    factor = max_short_side / min(image.shape[:2])
    if factor < 1.0:
        size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def resize_pair(frame_t: np.ndarray, frame_t1: np.ndarray, flow_bw: np.ndarray, mask: np.ndarray,
                size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Resize the four to ``size`` = (width, height), scaling flow vectors by the same factors.

    The mask is resized as a fraction and kept only where it stays whole: a pixel that mixes an
    unreliable neighbour is unreliable.
    """
    height, width = frame_t.shape[:2]
    if (width, height) == tuple(size):
        return frame_t, frame_t1, flow_bw, mask
    shrink = size[0] * size[1] < width * height
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    frame_t = cv2.resize(frame_t, size, interpolation=interp)
    frame_t1 = cv2.resize(frame_t1, size, interpolation=interp)
    flow_bw = cv2.resize(flow_bw, size, interpolation=interp) * np.array(
        [size[0] / width, size[1] / height], dtype=np.float32)
    mask = (cv2.resize(mask.astype(np.float32), size, interpolation=interp) > 0.999).astype(np.uint8)
    return frame_t, frame_t1, flow_bw, mask


def points_inside(flow: np.ndarray) -> np.ndarray:
    """bool (H, W): where x + flow(x) lies inside the (H, W) picture."""
    height, width = flow.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sx, sy = x + flow[..., 0], y + flow[..., 1]
    return (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)


def flip_pair(frame_t: np.ndarray, frame_t1: np.ndarray, flow_bw: np.ndarray,
              mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mirror the four left-right; the flow's x component changes sign."""
    flow = flow_bw[:, ::-1].copy()
    flow[..., 0] *= -1.0
    return frame_t[:, ::-1].copy(), frame_t1[:, ::-1].copy(), flow, mask[:, ::-1].copy()


def camera_motion_pair(photo: np.ndarray, size: int, rng: np.random.Generator,
                       motion: CameraMotion = CameraMotion(), zoom_range: tuple[float, float] = (1.0, 2.0)
                       ) -> tuple[np.ndarray, ...]:
    """A (size x size) view of ``photo`` and the same view after a random camera motion.

    Returns frame_t, frame_t1 (uint8 RGB), flow_bw (float32, exact) and mask (uint8, 0 where frame
    t+1 sees outside frame t). zoom_range: photo pixels per frame pixel (the view's scale), log-uniform,
    capped so that the view fits in the photo.
    """
    photo_h, photo_w = photo.shape[:2]
    fit = min(photo_h, photo_w) / size
    low, high = min(zoom_range[0], fit), min(zoom_range[1], fit)
    k = math.exp(rng.uniform(math.log(low), math.log(high))) if high > low else low
    # The view maps frame pixel x to photo point k * x + origin, anywhere the view fits.
    view = np.array([[k, 0.0, rng.uniform(0.0, max(photo_w - 1 - k * (size - 1), 0.0))],
                     [0.0, k, rng.uniform(0.0, max(photo_h - 1 - k * (size - 1), 0.0))],
                     [0.0, 0.0, 1.0]])
    # Camera motion: the point p of frame t is at M p in frame t+1 (a similarity about the centre).
    angle = math.radians(rng.uniform(-motion.max_rotation, motion.max_rotation))
    zoom = rng.uniform(1.0 - motion.max_zoom, 1.0 + motion.max_zoom)
    shift = rng.uniform(-motion.max_shift, motion.max_shift, size=2)
    centre = np.full(2, (size - 1) / 2.0)
    motion_m = np.eye(3)
    cos, sin = math.cos(angle), math.sin(angle)
    motion_m[:2, :2] = zoom * np.array([[cos, -sin], [sin, cos]])
    motion_m[:2, 2] = centre - motion_m[:2, :2] @ centre + shift
    back = np.linalg.inv(motion_m)   # frame t+1 point -> frame t point
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    frame_t, frame_t1 = (cv2.warpAffine(photo, m[:2], (size, size), flags=flags,
                                        borderMode=cv2.BORDER_REFLECT)
                         for m in (view, view @ back))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    flow_bw = np.stack([back[0, 0] * x + back[0, 1] * y + back[0, 2] - x,
                        back[1, 0] * x + back[1, 1] * y + back[1, 2] - y], axis=-1).astype(np.float32)
    return frame_t, frame_t1, flow_bw, points_inside(flow_bw).astype(np.uint8)


def usable_pair(frame_t: np.ndarray, frame_t1: np.ndarray, flow_bw: np.ndarray, mask: np.ndarray) -> bool:
    """Whether a (cropped) pair can be trained on: neither frame nearly constant (luma standard
    deviation at least MIN_CROP_STD) and at least MIN_VALID_FRACTION of the mask reliable."""
    return (float(mask.mean()) >= MIN_VALID_FRACTION and frame_std(frame_t) >= MIN_CROP_STD
            and frame_std(frame_t1) >= MIN_CROP_STD)


def to_tensors(frame_t: np.ndarray, frame_t1: np.ndarray, flow_bw: np.ndarray,
               mask: np.ndarray) -> dict[str, torch.Tensor]:
    """numpy (H, W, C) uint8 frames, float flow, uint8 mask -> the item dict of the module docstring."""
    def chw(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))

    return {
        "frame_t": chw(frame_t).float().div_(255.0),
        "frame_t1": chw(frame_t1).float().div_(255.0),
        "flow_bw": chw(flow_bw.astype(np.float32)),
        "mask": torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0),
    }


class PairDataset(Dataset):
    """Pairs from flow files (``vidstyle-flow/1``) and, optionally, photos with synthetic motion.

    flow_files: files or folders of ``*.h5``. crop: side S of the square training crop, pixels.
    flip: random horizontal flips. scale: (min, max) random rescale factor of video frames before
    cropping (log-uniform), or None; frames smaller than the crop are always scaled up to fit.
    photos: folders of images used as extra content. photo_fraction: share of draws that are photo
    pairs when both kinds are present (None: in proportion to their counts). seed: the augmentation
    and sampling seed.

    Index i < ``num_video`` is video pair i (files in order, pairs in order); the rest are photos.
    ``dataset[i]`` or ``dataset[(i, draw)]``: the item, augmented with randomness ``(seed, draw)``
    (``draw`` defaults to ``i``). HDF5 files open lazily in each process (DataLoader workers too).
    """

    def __init__(self, flow_files: Sequence[str | os.PathLike] = (), *, crop: int = 256, flip: bool = True,
                 scale: tuple[float, float] | None = None, photos: Sequence[str | os.PathLike] = (),
                 photo_fraction: float | None = None, motion: CameraMotion = CameraMotion(), seed: int = 0):
        if crop < 8:
            raise ConfigError(f"crop size must be at least 8 pixels, got {crop}")
        if scale is not None and not 0 < scale[0] <= scale[1]:
            raise ConfigError(f"scale range must be 0 < min <= max, got {scale}")
        if photo_fraction is not None and not 0.0 <= photo_fraction <= 1.0:
            raise ConfigError(f"photo fraction must be between 0 and 1, got {photo_fraction}")
        if not flow_files and not photos:
            raise ConfigError("no training data: give flow files, photos, or both")
        self.crop, self.flip, self.scale, self.motion, self.seed = int(crop), flip, scale, motion, int(seed)
        self.files = [FlowFile(p) for p in self._checked(find_flow_files(flow_files))] if flow_files else []
        self.pairs = [(f, t) for f, clip in enumerate(self.files) for t in range(clip.num_pairs)]
        self.photos = [str(p) for p in find_photos(photos)] if photos else []
        self.photo_fraction = photo_fraction
        self._usable: dict[int, bool] = {}

    @staticmethod
    def _checked(paths: list[Path]) -> list[Path]:
        for path in paths:
            validate(path, check_values=False)
        return paths

    @property
    def num_video(self) -> int:
        return len(self.pairs)

    @property
    def num_photos(self) -> int:
        return len(self.photos)

    def __len__(self) -> int:
        return self.num_video + self.num_photos

    def rng(self, draw: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(draw)])

    def key_for_draw(self, draw: int) -> tuple[int, int]:
        """The ``(index, draw)`` key of draw number ``draw`` of the training stream."""
        rng = np.random.default_rng([self.seed, int(draw), 1])
        fraction = self.photo_fraction if self.num_video and self.num_photos else None
        if fraction is None:
            return int(rng.integers(len(self))), int(draw)
        if rng.random() < fraction:
            return self.num_video + int(rng.integers(self.num_photos)), int(draw)
        return int(rng.integers(self.num_video)), int(draw)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, draw = key if isinstance(key, tuple) else (key, key)
        if not 0 <= index < len(self):
            raise IndexError(f"pair index {index} out of range 0..{len(self) - 1}")
        rng = self.rng(draw)
        # Unusable crops (near-constant frames, cuts) are redrawn: first elsewhere in the same pair,
        # then from the following pairs, all from the same (seed, draw) stream, so resuming still
        # reproduces the run exactly.
        for attempt in range(len(self) * _CROP_TRIES):
            current = (index + attempt // _CROP_TRIES) % len(self)
            if not self._pair_usable(current):
                continue
            arrays = self._draw(current, rng)
            if usable_pair(*arrays):
                break
        else:
            raise ConfigError("no usable training pair: every frame is (nearly) constant or a scene cut")
        if self.flip and rng.random() < 0.5:
            arrays = flip_pair(*arrays)
        return to_tensors(*arrays)

    def _pair_usable(self, index: int) -> bool:
        """False for a video pair its flow file marks as a cut or with a (nearly) flat frame, judged
        once per pair from the statistics precompute stores (computed for older files)."""
        if index >= self.num_video:
            return True
        if index not in self._usable:
            f, t = self.pairs[index]
            info = self.files[f].pair_info(t)
            self._usable[index] = (not info.cut and info.valid_fraction >= MIN_VALID_FRACTION
                                   and min(info.std_t, info.std_t1) >= MIN_CROP_STD)
        return self._usable[index]

    def _draw(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        if index < self.num_video:
            return self._video_pair(index, rng)
        photo = _load_photo(self.photos[index - self.num_video], int(_PHOTO_SIDE_IN_CROPS * self.crop))
        return camera_motion_pair(photo, self.crop, rng, self.motion)

    def _read(self, index: int) -> tuple[np.ndarray, ...]:
        f, t = self.pairs[index]
        pair = self.files[f].pair(t)
        # Checked as read (the run does not read every pair up front): NaN flow would only empty the
        # pair's mask, and the run would end saying the frames were constant.
        if not np.isfinite(pair.flow_bw).all():
            raise ConfigError(f"{self.files[f].path}: flow_bw[{t}] holds non-finite values (NaN or "
                              "infinite); recompute the clip's flow, or leave the file out")
        return pair.frame_t, pair.frame_t1, pair.flow_bw, pair.mask

    def _video_pair(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        arrays = self._read(index)
        height, width = arrays[0].shape[:2]
        factor = math.exp(rng.uniform(*np.log(self.scale))) if self.scale else 1.0
        factor = max(factor, self.crop / min(height, width))
        size = (max(self.crop, round(width * factor)), max(self.crop, round(height * factor)))
        arrays = resize_pair(*arrays, size)
        y0 = int(rng.integers(size[1] - self.crop + 1))
        x0 = int(rng.integers(size[0] - self.crop + 1))
        frame_t, frame_t1, flow_bw, mask = (a[y0:y0 + self.crop, x0:x0 + self.crop] for a in arrays)
        return frame_t, frame_t1, flow_bw, mask * points_inside(flow_bw)

    def preview_item(self) -> dict[str, torch.Tensor]:
        """A fixed, unaugmented pair for preview pictures: the middle pair of the first clip (or the
        first photo), whole frame, shorter side resized to the crop size."""
        if self.num_video:
            arrays = self._read(self.files[0].num_pairs // 2)
            height, width = arrays[0].shape[:2]
            factor = self.crop / min(height, width)
            arrays = resize_pair(*arrays, (round(width * factor), round(height * factor)))
        else:
            photo = _load_photo(self.photos[0], int(_PHOTO_SIDE_IN_CROPS * self.crop))
            arrays = camera_motion_pair(photo, self.crop, np.random.default_rng(0), self.motion, (2.0, 2.0))
        return to_tensors(*arrays)


class DrawSampler(Sampler):
    """Endless ``(index, draw)`` keys for one rank, from training step ``start_step`` on.

    Step s of a run with ``world_size`` ranks uses draws ``s * world_size * batch_size`` onwards;
    rank r takes the r-th block of ``batch_size`` of them (one shard per rank, no overlap).
    """

    def __init__(self, dataset: PairDataset, batch_size: int, start_step: int = 0, rank: int = 0,
                 world_size: int = 1):
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.start_step, self.rank, self.world_size = int(start_step), int(rank), int(world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start_step
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            for draw in range(first, first + self.batch_size):
                yield self.dataset.key_for_draw(draw)
            step += 1
