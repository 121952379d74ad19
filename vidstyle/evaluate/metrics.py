"""Temporal-consistency and fidelity metrics for stylized videos (``vidstyle metrics``).

Every number compares a stylized video with the video it was made from (the *input*), on the input's
pixel grid. Frames are streamed: one pass decodes the input and every stylized video side by side,
computes the optical flow once per input pair and scores all stylized videos on that pair, so memory
holds two frames per video whatever the length.

Definitions (RGB in [0, 1], frames t = 0 .. T-1, pairs t = 1 .. T-1):

- **E_warp** (Lai et al., ECCV 2018). For each pair, ``flow_bw`` (frame t -> t-1, grid of t) and the
  consistency mask M_t (Ruder et al.: not disoccluded, not a motion boundary, not from outside the
  frame) come from the *input* video. ``e_warp(t) = sum_x M_t(x) mean_c (V_t - warp(V_{t-1}))^2 /
  sum_x M_t(x)``: the squared RGB difference averaged over the three channels (Lai sum the channels,
  which is 3x this; ratios are the same). E_warp is the mean over pairs whose mask keeps any pixel.
  The input's own E_warp is the floor that flow error alone gives; ``e_warp_ratio`` = stylized / input.
- **Luminance flicker**: mean over pairs of ``|Y_t - Y_{t-1}|`` where Y_t is the frame's mean Rec. 601
  luma (0.299 R + 0.587 G + 0.114 B), in [0, 1] units. Catches global brightness pumping.
- **HF flicker**: with ``H_t`` the high-frequency energy of frame t, the mean over pixels of the squared
  4-neighbour Laplacian (kernel [[0,1,0],[1,-4,1],[0,1,0]]) of its luma, the mean over pairs of the
  relative change ``|H_t - H_{t-1}| / ((H_t + H_{t-1}) / 2)``. Relative, so that a video is not
  rewarded for having washed its texture out. Catches texture that pulses on and off.
- **Style loss** (with a style image): the training style loss of ``vidstyle.training.losses`` on one
  frame: sum over VGG-19 relu1_2, relu2_2, relu3_2, relu4_2 (the paper's style layers) of the mean squared
  difference between the frame's Gram matrices and the style image's (normalized by C*H*W); the style
  image is read and resized (longer side ``style_size`` pixels) by :mod:`vidstyle.io.images`, as training
  does, so the Gram targets are training's. **Content loss**: the training content loss, mean
  squared difference of relu4_2 features of the stylized and the input frame. Both are averaged over
  frames 0, N, 2N, ... (N = ``fidelity_every``) because a VGG-19 pass per frame is slow on a CPU.

Stylized frames whose size differs from the input's are resized to it (area interpolation when
shrinking, bilinear otherwise) and the report says so. Videos of different lengths are an error.

The table, JSON, CSV and plot are written by :mod:`vidstyle.evaluate.report`. Other papers' definitions of the
temporal error, long gaps (frames t and t+K) and ground-truth flow: :mod:`vidstyle.evaluate.consistency`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest

import cv2
import numpy as np

from vidstyle.errors import ConfigError, VideoError
from vidstyle.evaluate.progress import WorkProgress
from vidstyle.flow.optical import check_method, compute_pair, warp
from vidstyle.io.encode import read_made_by
from vidstyle.io.images import read_image, resize_longer_side, to_tensor
from vidstyle.io.video import iter_frames, probe

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class MetricsConfig:
    """How metrics are computed. ``flow_params`` override ``vidstyle.flow.optical.DEFAULT_PARAMS``."""

    flow_method: str = "farneback"
    flow_params: dict = field(default_factory=dict)
    style_size: int = 512          # longer side of the style image for the Gram targets, pixels
    fidelity_every: int = 10       # VGG fidelity on frames 0, N, 2N, ...
    device: str | None = None      # torch device for VGG; None: CUDA when available, else CPU


@dataclass
class VideoMetrics:
    """Scores of one video; per-pair curves are indexed like ``MetricsReport.t``."""

    name: str
    is_input: bool
    e_warp: float = math.nan
    e_warp_ratio: float = math.nan
    luminance_flicker: float = math.nan
    hf_flicker: float = math.nan
    style_loss: float | None = None
    content_loss: float | None = None
    resized_from: tuple[int, int] | None = None    # (width, height) before resizing to the input's
    made_by: dict[str, str] | None = None          # model, network, backend, as the file says
    e_warp_curve: list[float] = field(default_factory=list)
    luminance_change_curve: list[float] = field(default_factory=list)
    hf_change_curve: list[float] = field(default_factory=list)


@dataclass
class MetricsReport:
    """Everything ``vidstyle metrics`` prints and writes; ``videos[0]`` is the input."""

    input: str
    width: int
    height: int
    num_frames: int
    flow_method: str
    flow_params: dict
    mask_fraction: float                 # mean share of pixels the consistency mask keeps
    videos: list[VideoMetrics]
    style_image: str | None = None
    style_size: int | None = None
    fidelity_every: int | None = None
    fidelity_frames: int = 0

    @property
    def num_pairs(self) -> int:
        return max(self.num_frames - 1, 0)

    @property
    def t(self) -> list[int]:
        """Frame index of each per-pair value: pair (t-1, t) is reported at t."""
        return list(range(1, self.num_frames))


# ---------------------------------------------------------------------------------------------------
# Per-frame and per-pair measures (pure numpy)

def to_unit(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 RGB in [0, 1]."""
    return frame.astype(np.float32) * (1.0 / 255.0)


def luma(frame01: np.ndarray) -> np.ndarray:
    """float RGB (H, W, 3) in [0, 1] -> Rec. 601 luma (H, W) float32 in [0, 1]."""
    return frame01 @ LUMA_WEIGHTS


def hf_energy(luma01: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of a luma image (H, W) in [0, 1]."""
    lap = cv2.Laplacian(luma01, cv2.CV_32F, ksize=1)
    return float(np.mean(lap * lap))


def relative_change(previous: float, current: float) -> float:
    """``|current - previous|`` over their mean; 0 when both are 0."""
    mean = 0.5 * (previous + current)
    return abs(current - previous) / mean if mean > 0 else 0.0


def warping_error(prev01: np.ndarray, cur01: np.ndarray, flow_bw: np.ndarray, mask: np.ndarray) -> float:
    """E_warp of one pair: masked mean squared RGB difference between frame t and frame t-1 warped.

    ``prev01``, ``cur01``: float RGB (H, W, 3) in [0, 1]; ``flow_bw``: float32 (H, W, 2) pixels, from
    frame t to t-1 on the grid of t; ``mask``: (H, W), nonzero where the warp is reliable.
    Returns NaN when the mask keeps no pixel.
    """
    keep = mask.astype(bool)
    if not keep.any():
        return math.nan
    diff = cur01 - warp(prev01, flow_bw)
    return float(np.mean(np.square(diff[keep])))


def fit_to(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 RGB ``frame`` to (height, width): area interpolation when shrinking, else bilinear."""
    if frame.shape[:2] == (height, width):
        return frame
    shrinking = frame.shape[0] * frame.shape[1] > height * width
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------------------
# Style and content fidelity (torch, VGG-19)

def check_config(config: MetricsConfig) -> None:
    """ConfigError for settings that cannot work, before any decoding or model loading."""
    check_method(config.flow_method)
    if config.fidelity_every < 1:
        raise ConfigError(f"fidelity every N frames needs N >= 1, got {config.fidelity_every}")
    if config.style_size < 16:
        raise ConfigError(f"style size must be at least 16 pixels, got {config.style_size}")


class Fidelity:
    """VGG-19 style loss to one style image and content loss to the input, for batches of frames.

    The losses are the training losses of :mod:`vidstyle.training.losses` (same layers, same normalization),
    taken one frame at a time. ``style_image``: uint8 RGB (H, W, 3), e.g. from
    :func:`vidstyle.io.images.read_image`; it is resized here as training resizes it.
    """

    def __init__(self, style_image: np.ndarray, style_size: int = 512, device: str | None = None):
        import torch

        from vidstyle.device import resolve_device
        from vidstyle.training import losses
        from vidstyle.training.vgg import LAYERS, VGG19

        self._torch = torch
        self._losses = losses
        self.device = resolve_device(device)
        self.layers = tuple(dict.fromkeys((*losses.STYLE_LAYERS, *losses.CONTENT_LAYERS)))
        self.vgg = VGG19(last_layer=max(self.layers, key=LAYERS.index)).to(self.device)
        style = to_tensor(resize_longer_side(style_image, style_size)).to(self.device)
        with torch.no_grad():
            feats = self.vgg(style, self.layers)
        self.style_grams = {name: losses.gram(feats[name]) for name in losses.STYLE_LAYERS}

    def _features(self, frames: Sequence[np.ndarray]) -> dict:
        torch = self._torch
        batch = torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.no_grad():
            return self.vgg(batch, self.layers)

    def losses(self, input_frame: np.ndarray, frames: Sequence[np.ndarray]) -> list[tuple[float, float]]:
        """(style loss, content loss) of ``input_frame`` itself and then of each of ``frames``.

        All uint8 RGB (H, W, 3) of one size; content is measured against ``input_frame``.
        """
        losses = self._losses
        feats = self._features([input_frame, *frames])
        content_target = {name: feats[name][:1] for name in losses.CONTENT_LAYERS}
        out = []
        with self._torch.no_grad():
            for i in range(1 + len(frames)):
                one = {name: f[i:i + 1] for name, f in feats.items()}
                out.append((float(losses.style_loss(one, self.style_grams)),
                            float(losses.content_loss(one, content_target))))
        return out


# ---------------------------------------------------------------------------------------------------
# The streaming evaluation

class _Track:
    """Running state of one video: its previous frame and the per-pair curves so far."""

    def __init__(self, metrics: VideoMetrics):
        self.metrics = metrics
        self.prev01: np.ndarray | None = None
        self.prev_luma = 0.0
        self.prev_hf = 0.0
        self.fidelity: list[tuple[float, float]] = []

    def add(self, frame: np.ndarray, flow_bw: np.ndarray | None, mask: np.ndarray | None) -> None:
        frame01 = to_unit(frame)
        y = luma(frame01)
        mean_luma, hf = float(y.mean()), hf_energy(y)
        if self.prev01 is not None:
            m = self.metrics
            m.e_warp_curve.append(warping_error(self.prev01, frame01, flow_bw, mask))
            m.luminance_change_curve.append(abs(mean_luma - self.prev_luma))
            m.hf_change_curve.append(relative_change(self.prev_hf, hf))
        self.prev01, self.prev_luma, self.prev_hf = frame01, mean_luma, hf

    def finish(self, input_e_warp: float) -> None:
        m = self.metrics
        m.e_warp = _nanmean(m.e_warp_curve)
        m.luminance_flicker = _nanmean(m.luminance_change_curve)
        m.hf_flicker = _nanmean(m.hf_change_curve)
        m.e_warp_ratio = m.e_warp / input_e_warp if input_e_warp > 0 else math.nan
        if self.fidelity:
            m.style_loss = float(np.mean([s for s, _ in self.fidelity]))
            m.content_loss = float(np.mean([c for _, c in self.fidelity]))


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _check_frame(frame, name: str, t: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise VideoError(f"{name}: frame {t} is not an RGB uint8 image (shape {frame.shape}, {frame.dtype})")
    return frame


_END = object()


def _length_error(names: list[str], frames: tuple, t: int) -> VideoError:
    ended = [n for n, f in zip(names, frames) if f is _END]
    going = [n for n, f in zip(names, frames) if f is not _END]
    return VideoError(
        f"{', '.join(ended)} ended after {t} frames but {', '.join(going)} went on: the videos must have "
        f"the same number of frames (compare the first {t} with --max-frames {t})"
    )


def aligned_frames(streams: Sequence[Iterable[np.ndarray]], names: Sequence[str],
                   resized: dict[int, tuple[int, int]] | None = None) -> Iterator[list[np.ndarray]]:
    """Frame t of every stream, checked and brought to the size of the first stream's frame 0.

    Each stream yields uint8 RGB (H, W, 3) frames; VideoError when one is not RGB uint8, when the
    streams differ in length or when the first changes size. ``resized`` receives, for each stream
    whose frames were resized, its index and original (width, height).
    """
    height = width = 0
    for t, frames in enumerate(zip_longest(*streams, fillvalue=_END)):
        if any(f is _END for f in frames):
            raise _length_error(list(names), frames, t)
        frames = [_check_frame(f, n, t) for f, n in zip(frames, names)]
        if t == 0:
            height, width = frames[0].shape[:2]
            if resized is not None:
                resized.update({i: (f.shape[1], f.shape[0]) for i, f in enumerate(frames)
                                if i and f.shape[:2] != (height, width)})
        elif frames[0].shape[:2] != (height, width):
            raise VideoError(f"{names[0]}: frame {t} is {frames[0].shape[1]}x{frames[0].shape[0]}, "
                             f"frame 0 was {width}x{height}")
        yield [frames[0], *(fit_to(f, height, width) for f in frames[1:])]


def evaluate(
    input_frames: Iterable[np.ndarray],
    stylized: Sequence[tuple[str, Iterable[np.ndarray]]],
    *,
    input_name: str = "input",
    config: MetricsConfig = MetricsConfig(),
    fidelity: Fidelity | None = None,
    style_image: str | None = None,
    total: int | None = None,
    progress: bool = False,
) -> MetricsReport:
    """Score stylized videos against their input in one streaming pass.

    ``input_frames`` and each stylized stream yield uint8 RGB (H, W, 3) frames, the same number of
    each (VideoError otherwise). Stylized frames of another size are resized to the input's.
    ``fidelity`` adds style and content losses on every ``config.fidelity_every``-th frame;
    ``style_image`` only labels the report. ``total`` sizes the progress bar.
    """
    check_config(config)
    names = [input_name, *(name for name, _ in stylized)]
    tracks = [_Track(VideoMetrics(name, is_input=(i == 0))) for i, name in enumerate(names)]
    streams = [iter(input_frames), *(iter(frames) for _, frames in stylized)]
    mask_fractions: list[float] = []
    prev_input = None
    resized: dict[int, tuple[int, int]] = {}
    num_frames = height = width = 0
    every = config.fidelity_every if fidelity is not None else None
    bar = WorkProgress(total, every, enabled=progress)
    try:
        for t, frames in enumerate(aligned_frames(streams, names, resized)):
            height, width = frames[0].shape[:2]
            flow_bw = mask = None
            if prev_input is not None:
                _, flow_bw, mask = compute_pair(prev_input, frames[0], config.flow_method,
                                                **config.flow_params)
                mask_fractions.append(float(mask.astype(bool).mean()))
            for track, frame in zip(tracks, frames):
                track.add(frame, flow_bw, mask)
            if fidelity is not None and t % config.fidelity_every == 0:
                for track, pair in zip(tracks, fidelity.losses(frames[0], frames[1:])):
                    track.fidelity.append(pair)
            prev_input = frames[0]
            num_frames = t + 1
            bar.frame_done(t)
    finally:
        bar.close()
    if num_frames == 0:
        raise VideoError(f"{input_name}: no frames to compare")
    for i, size in resized.items():
        tracks[i].metrics.resized_from = size
    tracks[0].finish(math.nan)
    input_e_warp = tracks[0].metrics.e_warp
    tracks[0].metrics.e_warp_ratio = 1.0 if input_e_warp > 0 else math.nan
    for track in tracks[1:]:
        track.finish(input_e_warp)
    with_fidelity = fidelity is not None
    return MetricsReport(
        input=input_name, width=width, height=height, num_frames=num_frames,
        flow_method=config.flow_method, flow_params=dict(config.flow_params),
        mask_fraction=_nanmean(mask_fractions),
        videos=[track.metrics for track in tracks],
        style_image=style_image if with_fidelity else None,
        style_size=config.style_size if with_fidelity else None,
        fidelity_every=config.fidelity_every if with_fidelity else None,
        fidelity_frames=len(tracks[0].fidelity),
    )


def common_frame_count(input_path: str, stylized_paths: Sequence[str], max_frames: int | None) -> int:
    """Frames every video will yield (after ``max_frames``); VideoError naming each count when they differ."""
    if not stylized_paths:
        raise ConfigError("give at least one stylized video to compare with the input")
    if max_frames is not None and max_frames < 2:
        raise ConfigError(f"--max-frames must be at least 2 (one pair), got {max_frames}")
    infos = [probe(p) for p in (input_path, *stylized_paths)]
    counts = [min(i.num_frames, max_frames) if max_frames else i.num_frames for i in infos]
    if len(set(counts)) > 1:
        listing = ", ".join(f"{p} has {n}" for p, n in zip((input_path, *stylized_paths), counts))
        raise VideoError(f"frame counts differ ({listing}): the videos must have the same number of "
                         f"frames (compare the first {min(counts)} with --max-frames {min(counts)})")
    return counts[0]


def evaluate_videos(
    input_path: str,
    stylized_paths: Sequence[str],
    *,
    config: MetricsConfig = MetricsConfig(),
    style_image: str | None = None,
    max_frames: int | None = None,
    progress: bool = False,
) -> MetricsReport:
    """``evaluate`` on video files or frame folders, decoded as they are compared.

    Frame counts (after ``max_frames``) are checked before any work, so a mismatch fails at once.
    Each stylized video's ``made_by`` is what its file says made it (vidstyle's outputs say).
    """
    check_config(config)
    count = common_frame_count(input_path, stylized_paths, max_frames)
    fidelity = None
    if style_image is not None:
        fidelity = Fidelity(read_image(style_image, "style image"), config.style_size, config.device)
    report = evaluate(
        iter_frames(input_path, max_frames=max_frames),
        [(p, iter_frames(p, max_frames=max_frames)) for p in stylized_paths],
        input_name=input_path, config=config, fidelity=fidelity, style_image=style_image,
        total=count, progress=progress,
    )
    for video, path in zip(report.videos[1:], stylized_paths):
        video.made_by = read_made_by(path)
    return report
