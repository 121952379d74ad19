"""Still photos: read upright (EXIF orientation applied), stylize, write PNG, JPEG or WebP atomically.

    result = stylize_photo("beach.jpg", "beach.starry_night.png", stylizer, options)

The output has the input's size (or the ``--max-size`` one), in the format its suffix names.
Pillow reads and writes, because OpenCV ignores the EXIF orientation a phone stores instead of
turning the pixels.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidstyle.errors import ConfigError, VideoError
from vidstyle.fsutil import atomic_output
from vidstyle.infer.engine import FrameEngine
from vidstyle.infer.inferconfig import InferOptions
from vidstyle.infer.job import fit_size
from vidstyle.io.framefolder import IMAGE_EXTENSIONS

# Output suffix -> Pillow format and save options. JPEG and WebP at quality 95: the network's fine
# texture is what lower qualities smear first.
PHOTO_FORMATS = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95}),
    ".jpeg": ("JPEG", {"quality": 95}),
    ".webp": ("WEBP", {"quality": 95}),
}
DEFAULT_PHOTO_SUFFIX = ".png"


@dataclass
class PhotoResult:
    """What stylizing one photo produced: its output and size (pixels), time (s) and device."""

    output: Path
    width: int
    height: int
    seconds: float
    device: str


def is_photo(path: str | os.PathLike) -> bool:
    """True for a file named like an image (IMAGE_EXTENSIONS), whether or not it exists."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.is_dir()


def default_photo_output(input_path: str | os.PathLike, model_name: str) -> Path:
    """``INPUT_STEM.MODEL.png`` beside the input (PNG: lossless, whatever the input's format)."""
    path = Path(input_path)
    return path.parent / f"{path.stem}.{model_name}{DEFAULT_PHOTO_SUFFIX}"


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """uint8 RGB (H, W, 3) as displayed: EXIF orientation applied, alpha and palettes dropped."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"photo not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise VideoError(f"cannot read photo {path}: {error}") from error


def write_photo(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write uint8 RGB (H, W, 3) to ``path`` in the format its suffix names, atomically."""
    path = Path(path)
    fmt, save_options = photo_format(path)
    with atomic_output(path) as tmp:
        try:
            Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(tmp, format=fmt, **save_options)
        except OSError as error:
            raise VideoError(f"cannot write {path}: {error}") from error
    return path


def photo_format(path: Path) -> tuple[str, dict]:
    """(Pillow format, save options) for an output path; ConfigError for a suffix we do not write."""
    try:
        return PHOTO_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"a photo is written as .png, .jpg or .webp, not {path.name}") from None


def _shrunk(rgb: np.ndarray, max_size: int | None) -> np.ndarray:
    size = fit_size(rgb.shape[1], rgb.shape[0], max_size)
    return rgb if size is None else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def stylize_photo(input_path: str | os.PathLike, output: str | os.PathLike, stylizer: FrameEngine,
                  options: InferOptions | None = None) -> PhotoResult:
    """Stylize one photo into ``output`` (PNG/JPEG/WebP by suffix, written atomically).

    ``stylizer`` is either engine (:mod:`vidstyle.infer.engine`). Of ``options``, max_size, side_by_side
    and post_process apply (the video coding settings do not).
    """
    options = options or InferOptions()
    input_path, output = Path(input_path), Path(output)
    photo_format(output)
    if not output.parent.is_dir():
        raise VideoError(f"output folder does not exist: {output.parent}")
    if output.exists() and input_path.exists() and output.resolve() == input_path.resolve():
        raise VideoError(f"output {output} would overwrite the input")
    started = time.perf_counter()
    original = _shrunk(read_photo(input_path), options.max_size)
    stylized = stylizer(original[None])[0]
    if options.post_process is not None:
        stylized = options.post_process(original, stylized)
    if options.side_by_side:
        stylized = np.concatenate([original, stylized], axis=1)
    write_photo(output, stylized)
    return PhotoResult(output, stylized.shape[1], stylized.shape[0], time.perf_counter() - started,
                       str(stylizer.plan.device))
