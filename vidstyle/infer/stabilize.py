"""Flow-guided stabilization of stylized video at inference (``vidstyle infer --stabilize S``).

Each stylized frame is blended with the previous *result*, carried along the input's motion:

    out_t = (1 - S m) * stylized_t + S m * warp(out_t-1, flow_t->t-1)

m is 1 where that warp can be trusted and 0 elsewhere, so nothing is blended across an occlusion, a
motion boundary, a change of lighting or a cut, and a moving object leaves no trail: m is 0 where
the consistency check of :func:`vidstyle.flow.optical.consistency_mask` fails, where the input itself does
not match its own warp (``max_error``), and everywhere when fewer than ``min_valid`` of the pixels
pass (a cut: the frame starts afresh). Since out_t-1 was blended too, texture that the network
re-draws every frame is averaged over the last 1 / (1 - S) frames along the motion, while anything
the network changes for a reason (new content, lighting) comes through within a few frames: the old
result's weight falls as S^k.

The flow is DIS (OpenCV) on grey frames shrunk to ``flow_size`` pixels on their longer side, both
directions for the check, then scaled up; it costs far less than the network (docs/benchmarks.md,
"The stabilizer").
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidstyle.errors import ConfigError
from vidstyle.flow.optical import compute_flow, consistency_mask, warp

# Shorter side (pixels) of the frames the flow is computed on. OpenCV's DIS picks its pyramid from
# the longer side, and on a frame much wider than tall (320x8, 100x28) fails or crashes the process;
# from 32 up it ran on every shape tried up to 4097 wide. Narrower frames are left unstabilized.
MIN_FLOW_SIDE = 32


@dataclass(frozen=True)
class StabilizerConfig:
    """strength: S of the module docstring, in [0, 1) (0: off). flow_size: longer side of the frames
    the flow is computed on, pixels. preset: DIS preset ("ultrafast", "fast", "medium").
    max_error: difference (grey levels, 0-255) between an input frame and its predecessor warped
    onto it at which a pixel's trust reaches 0; it falls linearly from 1 at no difference.
    min_valid: share of trusted pixels below which a pair counts as a cut. erode: pixels (at flow
    size) by which the trusted region is shrunk, so that the blend stays clear of occlusion edges."""

    strength: float = 0.0
    flow_size: int = 320
    preset: str = "fast"
    max_error: float = 16.0
    min_valid: float = 0.3
    erode: int = 1

    def check(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ConfigError(f"--stabilize must be in [0, 1) (0 = off), got {self.strength}")
        if self.flow_size < 16:
            raise ConfigError(f"stabilizer flow size must be at least 16 pixels, got {self.flow_size}")
        if not (self.max_error > 0 and 0.0 <= self.min_valid <= 1.0 and self.erode >= 0):
            raise ConfigError("stabilizer: max_error must be > 0, min_valid in [0, 1], erode >= 0")


def follows(blender, motion: Motion | None, prev, shape: tuple[int, ...]) -> bool:
    """Whether a result of ``shape`` is blended with the previous one, ``prev``, along ``motion``: not
    for the first frame, a new size or a cut (too few pixels trusted). Counts the frame in
    ``blender``'s ``frames``, ``cuts`` and ``trusted`` (a Stabilizer, or its torch twin)."""
    blender.frames += 1
    if motion is None or prev is None or tuple(prev.shape) != tuple(shape):
        return False
    blender.trusted += motion.share
    if motion.share < blender.config.min_valid:
        blender.cuts += 1
        return False
    return True


@dataclass(frozen=True)
class Motion:
    """What the stabilizer learns from a pair of input frames, before the network's result is known:
    ``trust`` float32 (h, w) in [0, 1] and ``flow_bw`` (h, w, 2) from this frame to the one before,
    on the grid of the frames the flow was computed on; ``share``: the share of trusted pixels."""

    trust: np.ndarray
    flow_bw: np.ndarray
    share: float


class Stabilizer:
    """Stateful: call it on the frames of one video in order; :meth:`reset` before another video.

        stabilize = Stabilizer(StabilizerConfig(strength=0.6))
        for frame_in, frame_out in pairs:
            result = stabilize(frame_in, frame_out)     # uint8 RGB (H, W, 3) -> same

    A call is :meth:`see` (the input frame: the flow and the trust, which need no network) then
    :meth:`apply` (the network's output). A pipeline may run the two in different threads, ahead of
    each other, as long as each sees its frames in order: they share no state.

    ``cuts`` counts the pairs judged to be cuts, ``trusted`` sums the trusted share of every pair.
    """

    def __init__(self, config: StabilizerConfig):
        config.check()
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._prev_small: np.ndarray | None = None
        self._prev_out: np.ndarray | None = None
        self.frames = self.cuts = 0
        self.trusted = 0.0

    def __call__(self, frame_in: np.ndarray, frame_out: np.ndarray) -> np.ndarray:
        """The stabilized frame: uint8 RGB (H, W, 3), the size of ``frame_out`` (= ``frame_in``'s)."""
        return self.apply(frame_out, self.see(frame_in))

    def see(self, frame_in: np.ndarray) -> Motion | None:
        """The motion from the previous input frame to ``frame_in`` (None: none to follow: the first
        frame, a new size, a frame too small, or the stabilizer is off)."""
        if self.config.strength == 0:
            return None
        small, prev_small = self._shrink(frame_in), self._prev_small
        self._prev_small = small
        if small is None or prev_small is None or prev_small.shape != small.shape:
            return None
        return Motion(*self._trust(prev_small, small))

    def apply(self, frame_out: np.ndarray, motion: Motion | None) -> np.ndarray:
        """``frame_out`` blended with the previous result along ``motion`` (from :meth:`see` on this
        frame's input), unless that motion is a cut or there is nothing to follow."""
        if self.config.strength == 0:
            return frame_out
        prev_out, result = self._prev_out, frame_out
        if follows(self, motion, prev_out, frame_out.shape):
            result = self._blend(frame_out, prev_out, motion.trust, motion.flow_bw)
        self._prev_out = result
        return result

    def _shrink(self, frame: np.ndarray) -> np.ndarray | None:
        """The frame as used for the flow: RGB, longer side at most ``flow_size`` unless that would
        take the shorter side below MIN_FLOW_SIDE; None for a frame whose shorter side is below it."""
        height, width = frame.shape[:2]
        if min(height, width) < MIN_FLOW_SIDE:
            return None
        factor = max(self.config.flow_size / max(height, width), MIN_FLOW_SIDE / min(height, width))
        if factor >= 1.0:
            return frame
        size = (max(MIN_FLOW_SIDE, round(width * factor)), max(MIN_FLOW_SIDE, round(height * factor)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    def _trust(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """float32 trust (h, w) in [0, 1] on the grid of ``cur``, flow_bw (h, w, 2) from cur to prev,
        and the share of pixels trusted at all."""
        preset = {"preset": self.config.preset}
        flow_fw = compute_flow(prev, cur, "dis", **preset)
        flow_bw = compute_flow(cur, prev, "dis", **preset)
        mask = consistency_mask(flow_fw, flow_bw)
        if self.config.erode:
            kernel = np.ones((2 * self.config.erode + 1,) * 2, np.uint8)
            mask = cv2.erode(mask, kernel, borderType=cv2.BORDER_REPLICATE)
        error = cv2.absdiff(warp(prev, flow_bw), cur).max(axis=2)   # uint8, exact
        trust = np.clip(1.0 - error.astype(np.float32) / self.config.max_error, 0.0, 1.0) * mask
        return trust, flow_bw, float((trust > 0).mean())

    def _blend(self, frame_out: np.ndarray, prev_out: np.ndarray, trust: np.ndarray,
               flow_bw: np.ndarray) -> np.ndarray:
        # In OpenCV on uint8 frames: this runs on every frame at full size, beside the network
        # (docs/benchmarks.md, "The stabilizer"). Everything that can be is done on the small grid
        # and then scaled up (bilinear scaling commutes with these per-pixel linear maps), so that
        # at full size only OpenCV's own multi-threaded calls run, no numpy pass.
        height, width = frame_out.shape[:2]
        small_h, small_w = trust.shape
        alpha = trust * np.float32(self.config.strength)
        beta = 1.0 - alpha
        if (small_w, small_h) != (width, height):
            size = (width, height)
            flow_bw = flow_bw * np.array([width / small_w, height / small_h], np.float32)
            flow_bw = cv2.resize(flow_bw, size, interpolation=cv2.INTER_LINEAR)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
            beta = cv2.resize(beta, size, interpolation=cv2.INTER_LINEAR)
        carried = warp(prev_out, flow_bw)
        # (alpha * carried + beta * stylized), beta = 1 - alpha, rounded to the nearest level
        return cv2.blendLinear(carried, frame_out, alpha, beta).reshape(frame_out.shape)
