"""Colour and strength controls, applied to stylized frames after the network.

``--preserve-color`` keeps the input's colours and takes only the brightness of the stylized frame:
the stylized frame's luma (Y of YCrCb, BT.601) is recombined with the input's chroma (Cr, Cb).
``--strength A`` then blends linearly, ``A * stylized + (1 - A) * input``: 1 is the network's output,
0 the input unchanged. Both work on uint8 RGB frames of any size, so any network, photo or video
gets them without touching the engine.

YCrCb rather than Lab: it is what video codecs store, OpenCV converts uint8 frames to it in one fast
pass (Lab needs float), and luma/chroma is exactly the split the option promises.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidstyle.errors import ConfigError


@dataclass(frozen=True)
class ColorOptions:
    """preserve_color: keep the input's chroma, take the stylized luma. strength: share of the
    stylized frame in the result, 0..1 (1: the network's output as is)."""

    preserve_color: bool = False
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"--strength must be in 0..1, got {self.strength:g}")

    @property
    def changes_output(self) -> bool:
        """False when :meth:`apply` would return the stylized frames unchanged."""
        return self.preserve_color or self.strength < 1.0

    def apply(self, original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """uint8 RGB (..., H, W, 3) input and stylized frames of one shape -> uint8 RGB, same shape."""
        if original.shape != stylized.shape:
            raise ConfigError(f"input {original.shape} and stylized {stylized.shape} frames differ in size")
        out = preserve_color(original, stylized) if self.preserve_color else stylized
        return blend(original, out, self.strength) if self.strength < 1.0 else out


def _rows(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) as one tall (rows, W, 3) contiguous image, the shape OpenCV converts."""
    return np.ascontiguousarray(frames).reshape(-1, frames.shape[-2], 3)


def preserve_color(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """uint8 RGB with the luma (Y) of ``stylized`` and the chroma (Cr, Cb) of ``original``.

    Chroma is kept exactly up to the uint8 rounding and clipping of the conversion back to RGB
    (a dark luma under a saturated colour may leave the RGB gamut and be clipped).
    """
    y = cv2.cvtColor(_rows(stylized), cv2.COLOR_RGB2YCrCb)
    ycrcb = cv2.cvtColor(_rows(original), cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = y[..., 0]
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB).reshape(original.shape)


def blend(original: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
    """uint8 ``strength * stylized + (1 - strength) * original``, rounded to nearest."""
    return cv2.addWeighted(_rows(stylized), float(strength), _rows(original), 1.0 - float(strength),
                           0.0).reshape(original.shape)
