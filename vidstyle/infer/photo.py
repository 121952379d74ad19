"""Still photos: read upright (EXIF orientation applied), stylize, write PNG, JPEG or WebP atomically.

    result = stylize_photo("beach.jpg", "beach.starry_night.png", stylizer, options)

The output has the input's size (or the ``--max-size`` one), in the format its suffix names.
Pillow reads and writes, because OpenCV ignores the EXIF orientation a phone stores instead of
turning the pixels.
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidstyle.errors import ConfigError, VideoError
from vidstyle.fsutil import atomic_output, unique_temp
from vidstyle.infer.engine import FrameEngine
from vidstyle.infer.inferconfig import InferOptions
from vidstyle.infer.job import derived_output, fit_size
from vidstyle.io.animation import ANIMATED_SUFFIXES, is_animation
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
# HEIF/HEIC, phones' photos, are read by pillow-heif where it is installed (the "heic" extra).
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
HEIF_EXTRA = 'reading HEIC/HEIF photos needs pillow-heif: pip install "vidstyle[heic]"'
# Major brands of HEIF files (ISO 23008-12); AVIF's own brand ("avif") Pillow reads by itself.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
# Inputs read as photos (by Pillow): a frame folder's formats, and still pictures of others.
PHOTO_EXTENSIONS = IMAGE_EXTENSIONS | HEIF_SUFFIXES | {
    ".gif", ".apng", ".avif", ".jp2", ".j2k", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jfif"}
# Photos with more pixels are refused (one line) before they are decoded: Pillow's own warning
# level, ~89 megapixels (9450x9450), where one RGB copy takes 270 MB.
MAX_PHOTO_PIXELS = Image.MAX_IMAGE_PIXELS
# A photo of more than WHOLE_PIXELS runs through the network in tiles of at most TILE pixels a side,
# each with TILE_MARGIN pixels of context (stylize_tiled). The network needs about 0.5 GB a megapixel
# on torch (0.27 on onnxruntime): 1.35 GB at the peak for a whole 2-megapixel photo (1920x1080
# included, which runs whole as it always did), and a call on (1280 + 128)^2 pixels stays below it.
WHOLE_PIXELS = 1440 * 1440
TILE = 1280
TILE_MARGIN = 64
# Blur (Gaussian sigma, pixels per 1000 of the small copy's longer side) below which the tiled
# result takes its tones from the whole photo stylized small (_match_tones).
TONE_SIGMA = 4.0


@dataclass
class PhotoResult:
    """What stylizing one photo produced: its output and size (pixels), time (s) and device."""

    output: Path
    width: int
    height: int
    seconds: float
    device: str


def is_photo(path: str | os.PathLike) -> bool:
    """True for a file named like a still image (PHOTO_EXTENSIONS), whether or not it exists; an
    animated GIF, WebP, PNG or AVIF is a clip (vidstyle.io.animation), not a photo."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PHOTO_EXTENSIONS or path.is_dir():
        return False
    return suffix not in ANIMATED_SUFFIXES or not is_animation(path)


def is_heif(path: str | os.PathLike) -> bool:
    """True for a file whose content is HEIF (an ISO file of a HEIF major brand), whatever its name."""
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


@functools.cache
def heif_support() -> bool:
    """Whether HEIF photos can be read: pillow-heif is installed (its opener is then registered
    with Pillow, once)."""
    try:
        import pillow_heif  # noqa: PLC0415  (optional: the "heic" extra)
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def default_photo_output(input_path: str | os.PathLike, model_name: str) -> Path:
    """``INPUT_STEM.MODEL.png`` beside the input (PNG: lossless, whatever the input's format)."""
    path = Path(input_path)
    return derived_output(path, path.stem, model_name, DEFAULT_PHOTO_SUFFIX)


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """uint8 RGB (H, W, 3) as displayed: EXIF orientation applied, alpha and palettes dropped.
    HEIF/HEIC needs pillow-heif (HEIF_EXTRA otherwise).

    Grey levels of 16 bits and floats (0..1) are scaled to 8 bits; a photo of more than
    MAX_PHOTO_PIXELS is refused before it is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"photo not found: {path}" if not path.exists() else f"{path} is not a file")
    if is_heif(path) and not heif_support():
        raise VideoError(f"{path}: {HEIF_EXTRA}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
            image = Image.open(path)
        with image:
            check_photo_size(image.size, path)
            return _rgb8(ImageOps.exif_transpose(image), path)
    except Image.DecompressionBombError:    # a header declaring more than twice Pillow's limit
        raise VideoError(f"{path} declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; "
                         f"photos of up to {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels are stylized") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise VideoError(f"cannot read photo {path}: {error}") from error


def check_photo_size(size: tuple[int, int], path: Path) -> None:
    """VideoError for a photo of ``size`` (width, height) above MAX_PHOTO_PIXELS."""
    if size[0] * size[1] > MAX_PHOTO_PIXELS:
        raise VideoError(f"{path} is {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} megapixels); "
                         f"photos of up to {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels are stylized")


def _rgb8(image: Image.Image, path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3) of a Pillow image of any mode. Pillow's own conversion clips 16-bit grey
    (modes I;16*, I) at 255 and truncates floats (mode F) to 0 or 1, so those are scaled here."""
    if image.mode not in ("F", "I") and not image.mode.startswith("I;16"):
        return np.array(image.convert("RGB"), dtype=np.uint8)
    grey = np.asarray(image, dtype=np.float32)
    low, high = (float(grey.min()), float(grey.max())) if grey.size else (0.0, 0.0)
    full = 1.0 if image.mode == "F" else 65535.0
    if not (math.isfinite(low) and math.isfinite(high) and low >= 0 and high <= full):
        raise VideoError(f"{path}: {'float' if full == 1 else 'integer'} grey levels from {low:g} to "
                         f"{high:g}; vidstyle reads them as 0..{full:g}")
    grey = np.rint(grey * np.float32(255.0 / full)).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def write_photo(path: str | os.PathLike, rgb: np.ndarray, tmp: Path | None = None) -> Path:
    """Write uint8 RGB (H, W, 3) to ``path`` in the format its suffix names, atomically (through
    ``tmp``, a :func:`photo_temporary` of ``path``, when given). VideoError when it cannot be written."""
    path = Path(path)
    fmt, save_options = photo_format(path)
    try:
        with atomic_output(path, tmp or photo_temporary(path)) as tmp:
            Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(tmp, format=fmt, **save_options)
    except OSError as error:
        raise VideoError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def photo_temporary(path: Path) -> Path:
    """A new temporary beside ``path`` (fsutil.unique_temp); VideoError where the folder takes no
    file (read-only, not ours, full), so that this is known before the network runs."""
    try:
        return unique_temp(path)
    except OSError as error:
        raise VideoError(f"cannot write {path}: {error.strerror or error}") from error


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
    tmp = photo_temporary(output)
    try:
        stylized = stylize_tiled(original, stylizer)
        if options.post_process is not None:    # per pixel, so a band at a time is the same
            for top in range(0, stylized.shape[0], TILE):
                band = slice(top, top + TILE)
                stylized[band] = options.post_process(original[band], stylized[band])
        if options.side_by_side:
            stylized = np.concatenate([original, stylized], axis=1)
        write_photo(output, stylized, tmp)
    finally:
        tmp.unlink(missing_ok=True)     # gone already unless something failed
    return PhotoResult(output, stylized.shape[1], stylized.shape[0], time.perf_counter() - started,
                       str(stylizer.plan.device))


def stylize_tiled(rgb: np.ndarray, stylizer: FrameEngine, tile: int = TILE,
                  margin: int = TILE_MARGIN, whole: int | None = WHOLE_PIXELS) -> np.ndarray:
    """uint8 RGB (H, W, 3) stylized by ``stylizer`` (a callable on uint8 (N, H, W, 3)): whole up to
    ``whole`` pixels (None: ``tile`` squared), else in a grid of equal tiles of at most ``tile``
    pixels a side, so that memory stays bounded whatever the size.

    Each tile runs with ``margin`` pixels of the image around it as context, keeps ``margin // 2``
    of them and fades in over those its left and upper neighbours kept, so no seam shows. Instance
    norm sees one tile at a time, so the tiles' tones differ a little from the whole's
    (docs/inference.md, "Large photos").
    """
    height, width = rgb.shape[:2]
    if height * width <= (whole or tile * tile):
        return stylizer(rgb[None])[0]
    tile_h, tile_w = -(-height // -(-height // tile)), -(-width // -(-width // tile))
    out = np.empty_like(rgb)
    keep = margin // 2
    for top in range(0, height, tile_h):
        for left in range(0, width, tile_w):
            # input window (with context), kept window (with the seam), both clipped to the image
            y0, y1 = max(0, top - margin), min(height, top + tile_h + margin)
            x0, x1 = max(0, left - margin), min(width, left + tile_w + margin)
            k0, k1 = max(0, top - keep), min(height, top + tile_h + keep)
            j0, j1 = max(0, left - keep), min(width, left + tile_w + keep)
            piece = stylizer(np.ascontiguousarray(rgb[None, y0:y1, x0:x1]))[0]
            piece = piece[k0 - y0:k1 - y0, j0 - x0:j1 - x0]
            fade = np.ones((k1 - k0, j1 - j0), np.float32)
            if top > 0:
                fade *= _ramp(2 * keep, k1 - k0)[:, None]
            if left > 0:
                fade *= _ramp(2 * keep, j1 - j0)[None, :]
            out[k0:k1, j0:j1] = cv2.blendLinear(piece, out[k0:k1, j0:j1], fade, 1.0 - fade) \
                .reshape(piece.shape)
    _match_tones(out, rgb, stylizer, tile)
    return out


def _match_tones(out: np.ndarray, rgb: np.ndarray, stylizer: FrameEngine, tile: int) -> None:
    """Give the tiled ``out`` (in place) the broad tones of the whole photo stylized at most ``tile``
    squared pixels: each tile's instance norm saw only its own part, so the tiles' tones differ.
    Fine texture stays the tiles' own; what changes is ``out`` blurred at the small scale."""
    height, width = rgb.shape[:2]
    scale = tile / math.sqrt(height * width)
    small = (max(8, round(width * scale)), max(8, round(height * scale)))
    reference = stylizer(cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)[None])[0]
    sigma = TONE_SIGMA * max(small) / 1000

    def broad(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    shift = broad(reference) - broad(cv2.resize(out, small, interpolation=cv2.INTER_AREA))
    for top in range(0, height, 256):     # a band at a time: memory stays bounded
        rows = slice(top, min(height, top + 256))
        y = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5) * small[1] / height - 0.5
        x = (np.arange(width, dtype=np.float32) + 0.5) * small[0] / width - 0.5
        map_x, map_y = np.meshgrid(x, y)
        band = cv2.remap(shift, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[rows] = np.clip(out[rows] + band, 0, 255).round().astype(np.uint8)


def _ramp(rise: int, length: int) -> np.ndarray:
    """float32 (length,): from near 0 to 1 over the first ``rise`` entries, then 1."""
    ramp = np.ones(length, np.float32)
    ramp[:rise] = (np.arange(min(rise, length), dtype=np.float32) + 0.5) / rise
    return ramp
