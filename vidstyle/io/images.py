"""Still images: read a file as upright RGB, resize it to a longer side, write one atomically.

One reader and one resize serve training (the style image's Gram targets), the metrics (the style
loss of a stylized video) and the benchmarks, so the style loss a report gives is the loss that
training minimized, on the same pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vidstyle.errors import ConfigError
from vidstyle.fsutil import atomic_output

if TYPE_CHECKING:
    import torch


def read_image(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """uint8 RGB (H, W, 3) of an image file, turned upright as its EXIF orientation says.

    ``what`` names the file in the error: ConfigError, one line, when it is missing or no decoder
    reads it.
    """
    if not Path(path).is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:    # from bytes: cv2.imread crashes on a name that is not UTF-8
        data = np.fromfile(path, np.uint8)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    # OpenCV applies the EXIF orientation itself
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ConfigError(f"{path}: cannot read the {what} (not an image file?)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_longer_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """uint8 (H, W, C) resized so that its longer side is ``long_side`` pixels, aspect kept.

    Area interpolation when shrinking (no aliasing of fine brush strokes), bicubic when enlarging.
    """
    factor = long_side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


def load_style_image(path: str | os.PathLike, long_side: int) -> np.ndarray:
    """The style image as training and the metrics see it: uint8 RGB (H, W, 3), upright, with its
    longer side ``long_side`` pixels."""
    return resize_longer_side(read_image(path, "style image"), long_side)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float32 (1, 3, H, W) in [0, 1], the style image as VGG-19 takes it.

    Training and the metrics both convert the style image here: a convolution's rounding depends on
    its input's memory strides, so another conversion of the same pixels gives Gram targets that
    differ in the last bits.
    """
    import torch  # deferred: the metrics and the CLI read images without loading torch

    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def to_image(chw: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [0, 1] -> uint8 RGB (H, W, 3), rounded: the inverse of :func:`to_tensor`
    for one image (training's preview pictures)."""
    return (chw.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def write_image(path: str | os.PathLike, rgb: np.ndarray, jpeg_quality: int | None = None) -> None:
    """Write uint8 RGB (H, W, 3) to ``path`` (format from the extension: .png, .jpg, ...), atomically.

    ``jpeg_quality``: 0-100 for a JPEG (None: OpenCV's default). ConfigError, and no file under
    ``path``, when the image cannot be encoded or written.
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if jpeg_quality is not None else []
    try:    # encoded in memory: cv2.imwrite crashes on a name that is not UTF-8
        ok, data = cv2.imencode(Path(path).suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    except cv2.error:   # no encoder for the extension, or an array it cannot encode
        ok = False
    if not ok:
        raise ConfigError(f"{path}: could not write the image")
    try:
        with atomic_output(path) as tmp:
            data.tofile(tmp)
    except OSError as error:
        raise ConfigError(f"{path}: could not write the image ({error.strerror or error})") from None
