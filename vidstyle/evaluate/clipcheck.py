"""A network against the quality targets on one clip, as ``python infer.py CLIP --model M`` would make it.

The frames go through the network and the stabilizer (the command's default strength is the
caller's to pass), then :func:`vidstyle.evaluate.metrics.evaluate` scores them against the input:
E_warp and its ratio to the input's own, the style loss to the style image and its ratio to the
unstylized input's, and the mean luma of a black frame's output (the fade-to-black test).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from vidstyle.evaluate import metrics
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.infer.stabilize import Stabilizer, StabilizerConfig
from vidstyle.infer.stylize import Stylizer
from vidstyle.io.images import read_image

TARGETS = {"warping_error_ratio": 3.0, "style_loss_ratio": 0.35, "black_luma": 0.12}


def default_output(stylizer: Stylizer, frames: Sequence[np.ndarray], stabilize: float) -> list[np.ndarray]:
    """What ``vidstyle infer`` writes for these frames before encoding: the network, then the
    stabilizer at ``stabilize``."""
    stabilizer = Stabilizer(StabilizerConfig(strength=stabilize))
    return [stabilizer(a, b) for a, b in zip(frames, stylizer.stream(iter(frames)))]


def black_luma(stylizer: Stylizer) -> float:
    """Mean Rec. 601 luma in [0, 1] of a black 640x360 frame's output (the fade-to-black test)."""
    out = stylizer(np.zeros((1, 360, 640, 3), np.uint8))[0]
    return float(metrics.luma(metrics.to_unit(out)).mean())


def check_on_frames(net: torch.nn.Module, frames: Sequence[np.ndarray], style_image: str | os.PathLike, *,
                    stabilize: float, clip: str = "clip", style_size: int = 512, fidelity_every: int = 8,
                    device: str = "cpu") -> dict:
    """Scores of ``net`` (moved to ``device``, eval mode, no gradients) on uint8 RGB ``frames``:
    ``warping_error`` (+ ``_input``, ``_ratio``), ``style_loss`` (+ ``_input``, ``_ratio``),
    ``black_luma`` and ``clip`` (a description)."""
    stylizer = Stylizer(net, EngineConfig(device=device, compile=False, backend="torch"))
    output = default_output(stylizer, frames, stabilize)
    fidelity = metrics.Fidelity(read_image(style_image, "style image"), style_size, device)
    report = metrics.evaluate(iter(frames), [("model", iter(output))], input_name=clip, fidelity=fidelity,
                              config=metrics.MetricsConfig(fidelity_every=fidelity_every))
    source, result = report.videos
    height, width = frames[0].shape[:2]
    return {"clip": f"{clip}, first {len(frames)} frames at {width}x{height}, stabilizer {stabilize:g}",
            "warping_error": result.e_warp, "warping_error_input": source.e_warp,
            "warping_error_ratio": result.e_warp_ratio,
            "style_loss": result.style_loss, "style_loss_input": source.style_loss,
            "style_loss_ratio": result.style_loss / source.style_loss,
            "black_luma": black_luma(stylizer)}


def meets_targets(scores: dict) -> dict[str, bool]:
    """For each target of TARGETS, whether ``scores`` meets it."""
    return {k: bool(scores[k] <= limit) for k, limit in TARGETS.items()}
