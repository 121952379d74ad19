"""The content of a quick run (:mod:`vidstyle.training.quick`): clips, frame folders and photos read
once, and the fixed set of training samples cut from them, each pair with its flow computed on the fly
(:mod:`vidstyle.flow.optical`, DIS) or, for a photo, a camera motion of known flow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidstyle.errors import ConfigError
from vidstyle.flow.optical import compute_pair
from vidstyle.io.images import read_image, resize_longer_side
from vidstyle.io.video import VIDEO_EXTENSIONS, is_clip, iter_frames
from vidstyle.training.data import PHOTO_SUFFIXES, camera_motion_pair, points_inside, usable_pair

MAX_CLIP_FRAMES = 120    # frames read from each content clip

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
# The default content: the sample clip and the shipped stills (data/content/, from OpenCV's test footage).
DEFAULT_CONTENT = (REPO_DATA / "samples" / "vtest_4s.mp4", REPO_DATA / "content")
MIN_IMAGE_SIDE = 16      # pixels: a smaller image has no texture to learn (and VGG needs 16)


@dataclass
class Content:
    """Decoded content: ``clips`` (name, uint8 RGB frames of one size) and ``photos`` (name, image)."""

    clips: list[tuple[str, list[np.ndarray]]]
    photos: list[tuple[str, np.ndarray]]

    def describe(self) -> list[str]:
        parts = [f"{name} ({len(frames)} frames)" for name, frames in self.clips]
        if self.photos:
            parts.append(f"{len(self.photos)} photo(s)")
        return parts


def find_content(specs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(clips, photos) named by ``specs``: clip files, frame folders, photos, or folders holding them
    (not recursive). Empty ``specs``: DEFAULT_CONTENT. ConfigError if nothing usable is found."""
    default = not specs
    clips: list[Path] = []
    photos: list[Path] = []
    for spec in map(Path, specs or [p for p in DEFAULT_CONTENT if p.exists()]):
        if not spec.exists():
            raise ConfigError(f"--content {spec}: no such file or folder")
        if is_clip(spec):
            clips.append(spec)
        elif spec.is_file():
            if spec.suffix.lower() not in PHOTO_SUFFIXES:
                raise ConfigError(f"--content {spec}: neither a video "
                                  f"({', '.join(sorted(VIDEO_EXTENSIONS))}) "
                                  f"nor a photo ({', '.join(PHOTO_SUFFIXES)})")
            photos.append(spec)
        else:
            for path in sorted(spec.iterdir()):
                if path.name.startswith("."):
                    continue
                if is_clip(path):
                    clips.append(path)
                elif path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES:
                    photos.append(path)
    if not clips and not photos:
        where = "the default content (data/samples, data/content)" if default else ", ".join(map(str, specs))
        raise ConfigError(f"no clips or photos in {where}; pass --content CLIP_OR_FOLDER")
    return clips, photos


def load_content(clips: Sequence[Path], photos: Sequence[Path], short_side: int) -> Content:
    """Decode the clips (first MAX_CLIP_FRAMES frames) and read the photos, shorter side
    ``short_side`` px. VideoError / ConfigError (one line) for a clip without frames, an unreadable
    photo or one too small to crop."""
    decoded = []
    for clip in clips:
        frames = [shorter_side(f, short_side) for f in iter_frames(clip, max_frames=MAX_CLIP_FRAMES)]
        if len(frames) < 2:
            raise ConfigError(f"--content {clip}: {len(frames)} frame(s); a clip needs at least 2")
        decoded.append((clip.name, frames))
    images = []
    for photo in photos:
        image = read_image(photo, "content photo")
        if min(image.shape[:2]) < MIN_IMAGE_SIDE:
            raise ConfigError(f"{photo}: a {image.shape[1]}x{image.shape[0]} photo is too small for content")
        images.append((photo.name, shorter_side(image, 2 * short_side)))
    return Content(decoded, images)


def shorter_side(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` resized so that its shorter side is ``side`` px, aspect kept."""
    height, width = image.shape[:2]
    return resize_longer_side(image, round(side * max(height, width) / min(height, width)))


@dataclass
class Sample:
    """One training pair, fixed for the run: uint8 RGB crops, flow_bw (pixels) and mask of t+1."""

    frame_t: np.ndarray
    frame_t1: np.ndarray
    flow_bw: np.ndarray
    mask: np.ndarray


def make_samples(content: Content, size: int, count: int, rng: np.random.Generator,
                 flow_method: str = "dis") -> list[Sample]:
    """``count`` pairs of ``size`` px crops: from the clips (consecutive frames, flow computed on the
    fly, once per frame pair used) and the photos (a random camera motion, exact flow), in equal
    shares per clip and for the photos together. Flat crops (a black sky) are redrawn.
    ``flow_method`` None: no flow is computed (zero flow, whole mask; for runs without the temporal
    loss)."""
    sources = [("clip", i) for i in range(len(content.clips))] + ([("photos", 0)] if content.photos else [])
    flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    samples: list[Sample] = []
    for k in range(count):
        kind, i = sources[k % len(sources)]
        for _ in range(8):
            if kind == "clip":
                frames = content.clips[i][1]
                t = int(rng.integers(len(frames) - 1))
                if (i, t) not in flows:
                    flows[(i, t)] = (compute_pair(frames[t], frames[t + 1], flow_method)[1:] if flow_method
                                     else _no_flow(frames[t]))
                arrays = _crop(frames[t], frames[t + 1], *flows[(i, t)], size, rng)
            else:
                photo = content.photos[int(rng.integers(len(content.photos)))][1]
                arrays = camera_motion_pair(photo, size, rng)
            if usable_pair(*arrays):
                break
        if rng.random() < 0.5:
            arrays = _flip(*arrays)
        samples.append(Sample(*arrays))
    return samples


def _no_flow(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = frame.shape[:2]
    return np.zeros((height, width, 2), np.float32), np.ones((height, width), np.uint8)


def _crop(frame_t, frame_t1, flow_bw, mask, size: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    height, width = frame_t.shape[:2]
    if min(height, width) < size:
        raise ConfigError(f"content frames of {width}x{height} are smaller than the {size} px crop")
    y0, x0 = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
    cut = [a[y0:y0 + size, x0:x0 + size] for a in (frame_t, frame_t1, flow_bw, mask)]
    cut[3] = cut[3] * points_inside(cut[2])
    return tuple(cut)


def _flip(frame_t, frame_t1, flow_bw, mask) -> tuple[np.ndarray, ...]:
    flow = flow_bw[:, ::-1].copy()
    flow[..., 0] *= -1.0
    return frame_t[:, ::-1].copy(), frame_t1[:, ::-1].copy(), flow, mask[:, ::-1].copy()


def batch_tensors(samples: Sequence[Sample], device: torch.device) -> dict[str, torch.Tensor]:
    """The samples as the loop's (N, C, S, S) float tensors (RGB [0, 1], flow in pixels, mask 0/1)."""
    def stack(arrays, scale):
        return torch.from_numpy(np.stack(arrays)).float().div_(scale).to(device)

    return {"frame_t": stack([s.frame_t for s in samples], 255.0).permute(0, 3, 1, 2).contiguous(),
            "frame_t1": stack([s.frame_t1 for s in samples], 255.0).permute(0, 3, 1, 2).contiguous(),
            "flow_bw": stack([s.flow_bw for s in samples], 1.0).permute(0, 3, 1, 2).contiguous(),
            "mask": stack([s.mask for s in samples], 1.0).unsqueeze(1)}


def read_style(path: str | os.PathLike) -> np.ndarray:
    """The painting, uint8 RGB; ConfigError if it is not an image or smaller than MIN_IMAGE_SIDE."""
    image = read_image(path, "style image")
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise ConfigError(f"{path}: the style image is {image.shape[1]}x{image.shape[0]} pixels; give a "
                          f"painting at least {MIN_IMAGE_SIDE} pixels a side (a few hundred is best)")
    return image
