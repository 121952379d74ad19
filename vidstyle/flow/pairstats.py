"""Per-pair statistics that let training judge a pair: how much of it the mask trusts, whether it
spans a scene cut, and how much contrast each frame has.

Precompute stores them in every flow file (``valid_fraction``, ``cut``, ``frame_std``; docs/flows.md,
"Flow files"); ``FlowFile.pair_info`` recomputes them from the frames, flows and masks of older files.

Cut test: frame t warped by flow_bw predicts frame t+1 wherever the motion is real. Across a cut the
flow has nothing to follow, so the prediction does not resemble frame t+1. Resemblance is measured as
the correlation of the two luma pictures, which a fade (a change of gain and offset) leaves at 1, and
which does not depend on the frames' contrast. On splices of unrelated real clips and on the pairs
of continuous ones (fast motion, motion blur, CGI included) the two ranges do not overlap, and the
threshold sits between them (docs/flows.md, "Flow files", has the ranges). The mask's valid fraction does
not separate them, so it is stored for training to judge on its own, not used here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidstyle.flow.optical import warp

# ITU-R BT.601 weights, the grey picture OpenCV (and so the flow methods) sees.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Luma standard deviation (of [0, 1]) under which a frame counts as flat: about 5 grey levels, the
# contrast of a black or fading-to-black frame whose picture is mostly coding noise.
FLAT_STD = 0.02
# A pair is a cut when frame t warped onto t+1 correlates less than this with frame t+1.
CUT_CORRELATION = 0.55


@dataclass(frozen=True)
class PairInfo:
    """What training needs to judge pair t (frames t, t+1).

    valid_fraction: fraction of mask pixels that are 1 (0..1). cut: the pair spans a scene cut.
    std_t, std_t1: standard deviation of each frame's luma in [0, 1] (about 0 for a flat frame).
    """

    valid_fraction: float
    cut: bool
    std_t: float
    std_t1: float


def luma(frame: np.ndarray) -> np.ndarray:
    """float32 (H, W) in [0, 1] from a uint8 RGB frame (H, W, 3)."""
    return (np.asarray(frame, dtype=np.float32) @ _LUMA_WEIGHTS) / 255.0


def frame_std(frame: np.ndarray) -> float:
    """Standard deviation of the frame's luma in [0, 1]: 0 for a constant frame."""
    return float(luma(frame).std())


def warp_correlation(frame_t: np.ndarray, frame_t1: np.ndarray, flow_bw: np.ndarray) -> float:
    """Correlation (-1..1) of frame t+1's luma with frame t's warped by ``flow_bw`` (H, W, 2, pixels).

    Two flat pictures are alike (1: nothing changed that a flow could explain); one flat picture
    beside one with structure, as at a cut from black, resembles nothing (0).
    """
    predicted = warp(luma(frame_t), np.asarray(flow_bw, dtype=np.float32)).ravel()
    actual = luma(frame_t1).ravel()
    spread_p, spread_a = float(predicted.std()), float(actual.std())
    if spread_p < FLAT_STD and spread_a < FLAT_STD:
        return 1.0
    if spread_p < FLAT_STD or spread_a < FLAT_STD:
        return 0.0
    covariance = float(np.mean((predicted - predicted.mean()) * (actual - actual.mean())))
    return covariance / (spread_p * spread_a)


def pair_statistics(frame_t: np.ndarray, frame_t1: np.ndarray, flow_bw: np.ndarray,
                    mask: np.ndarray) -> tuple[float, bool]:
    """(valid_fraction, cut) of one pair: frames uint8 RGB (H, W, 3), flow_bw (H, W, 2), mask (H, W)."""
    valid = float(np.count_nonzero(mask)) / max(mask.size, 1)
    return valid, warp_correlation(frame_t, frame_t1, flow_bw) < CUT_CORRELATION
