"""Looking at a flow file: its summary statistics and a picture of one pair (``vidstyle flows``).

Both read a ``vidstyle-flow/1`` file (:mod:`vidstyle.flow.flowstore`); colours are those of
:func:`vidstyle.flow.optical.flow_to_color` (hue = direction, saturation = speed).
"""

from __future__ import annotations

import os

import numpy as np

from vidstyle.errors import ConfigError
from vidstyle.flow.flowstore import FlowFile, validate
from vidstyle.flow.optical import flow_to_color, warp
from vidstyle.flow.pairstats import FLAT_STD


def summarize(path: str) -> dict:
    """Attributes and statistics of a valid flow file (raises FlowFileError if it is not valid).

    Flow in pixels per frame, mask shares in [0, 1]; ``cuts`` lists pair indices, ``flat_frames``
    frame indices whose pixel spread is below ``pairstats.FLAT_STD``.
    """
    attrs = validate(path)
    with FlowFile(path) as clip:
        magnitudes, infos = [], []
        for t in range(clip.num_pairs):
            magnitudes.append(float(np.linalg.norm(clip.pair(t).flow_fw, axis=-1).mean()))
            infos.append(clip.pair_info(t))
    valid = [info.valid_fraction for info in infos]
    return {
        "file": str(path), "valid": True, "bytes": os.path.getsize(path),
        "bytes_per_pair": os.path.getsize(path) // max(len(valid), 1),
        "mean_flow_pixels": float(np.mean(magnitudes)), "mean_mask_valid": float(np.mean(valid)),
        "min_mask_valid": float(np.min(valid)), "median_mask_valid": float(np.median(valid)),
        "cuts": [t for t, info in enumerate(infos) if info.cut],
        "flat_frames": [t for t in range(len(infos) + 1)
                        if (infos[t].std_t if t < len(infos) else infos[-1].std_t1) < FLAT_STD],
        "attrs": attrs,
    }


def render_pair(path: str, t: int) -> np.ndarray:
    """uint8 RGB picture of pair t, (2H, 3W, 3), two rows: frame t | frame t+1 | mask (white =
    reliable), then flow_fw | flow_bw (colour wheel, one scale) | frame t warped by flow_bw (should
    match frame t+1). ConfigError when t is not a pair of the file."""
    with FlowFile(path) as clip:
        if not 0 <= t < clip.num_pairs:
            raise ConfigError(f"--pair must be between 0 and {clip.num_pairs - 1} for {path}")
        pair = clip.pair(t)
    scale = float(max(np.abs(pair.flow_fw).max(), np.abs(pair.flow_bw).max(), 1e-6))
    mask = np.repeat(pair.mask[..., None] * 255, 3, axis=2).astype(np.uint8)
    top = np.concatenate([pair.frame_t, pair.frame_t1, mask], axis=1)
    bottom = np.concatenate([flow_to_color(pair.flow_fw, scale), flow_to_color(pair.flow_bw, scale),
                             warp(pair.frame_t, pair.flow_bw)], axis=1)
    return np.concatenate([top, bottom], axis=0)
