"""Frames with KNOWN motion, for tests across the project (numpy only, no files, deterministic).

Every picture is sampled from an analytic texture: a sum of random plane waves (wavelengths 6 to 96
pixels, every orientation), so a frame can be evaluated at any sub-pixel point and moved frames are
exact (up to uint8 rounding), not interpolated. Pixel (row i, column j) sits at the point x = j,
y = i, as in OpenCV.

The flow convention is the project's (docs/INTERFACES.md): ``flow_fw`` is on the grid of frame a and
points to where each pixel is in frame b; ``flow_bw`` is on the grid of b and points back into a, so
that sampling a at x + flow_bw(x) gives b(x) wherever that point was visible in a.

    from tests.synthetic import moving_square_pair, endpoint_error
    pair = moving_square_pair(120, 160, velocity=(6, 3))
    pair.frame_a, pair.frame_b      # uint8 RGB (H, W, 3)
    pair.flow_fw, pair.flow_bw      # float32 (H, W, 2), pixels (dx, dy)
    pair.valid                      # bool (H, W) on the grid of b: neither disoccluded nor out of frame
    endpoint_error(my_flow_bw, pair.flow_bw, pair.valid)

Also: ``texture`` (one picture), ``translation_pair`` and ``affine_pair`` (+ ``similarity`` to build
its matrix) for whole-picture motion, ``moving_square_clip`` for a (T, H, W, 3) clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NUM_WAVES = 40
_WAVELENGTHS = (6.0, 96.0)


@dataclass(frozen=True)
class MotionPair:
    """Two frames and the exact motion between them.

    frame_a, frame_b: uint8 RGB (H, W, 3). flow_fw: float32 (H, W, 2) on the grid of a, pixels.
    flow_bw: float32 (H, W, 2) on the grid of b, pixels. On the grid of b, bool (H, W):
    disoccluded -- visible in b but hidden (behind the square) in a; out_of_frame -- the point
    x + flow_bw(x) lies outside frame a; foreground -- the moving square in b (all False when the
    whole picture moves as one).
    """

    frame_a: np.ndarray
    frame_b: np.ndarray
    flow_fw: np.ndarray
    flow_bw: np.ndarray
    disoccluded: np.ndarray
    out_of_frame: np.ndarray
    foreground: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """bool (H, W) on the grid of b: where warping a with flow_bw must reproduce b."""
        return ~(self.disoccluded | self.out_of_frame)


def texture_at(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Evaluate the smooth random texture number ``seed`` at points (x, y) (any equal shapes).

    Returns float32 (..., 3) in [0, 255]. Channels share most of their waves so that the grey
    picture the flow methods see keeps the full texture.
    """
    rng = np.random.default_rng(seed)
    wavelength = np.exp(rng.uniform(*np.log(_WAVELENGTHS), size=_NUM_WAVES))
    angle = rng.uniform(0.0, np.pi, size=_NUM_WAVES)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=_NUM_WAVES)
    # Amplitude grows slowly with wavelength: coarse structure for the pyramid levels of the flow
    # methods, yet no single wave dominates (which would leave an aperture problem along it).
    amplitude = np.sqrt(wavelength) / np.sqrt(wavelength).sum()
    colour = 1.0 + 0.6 * rng.uniform(-1.0, 1.0, size=(_NUM_WAVES, 3))
    kx = 2.0 * np.pi * np.cos(angle) / wavelength
    ky = 2.0 * np.pi * np.sin(angle) / wavelength
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.zeros(x.shape + (3,), dtype=np.float64)
    for k in range(_NUM_WAVES):
        out += (amplitude[k] * np.sin(kx[k] * x + ky[k] * y + phase[k]))[..., None] * colour[k]
    # The gain spreads grey levels over the range; about 1% of pixels clip at each end.
    return np.clip(127.5 + 255.0 * 1.6 * out, 0.0, 255.0).astype(np.float32)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x, y float64 (H, W): the coordinates of every pixel."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return x, y


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(image).astype(np.uint8)


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture picture, uint8 RGB (height, width, 3)."""
    return _to_uint8(texture_at(*_grid(height, width), seed=seed))


def similarity(height: int, width: int, angle_deg: float = 0.0, scale: float = 1.0,
               shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """2x3 affine matrix: rotate by ``angle_deg``, scale about the picture's centre, then shift (dx, dy)."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    c, s = scale * np.cos(np.radians(angle_deg)), scale * np.sin(np.radians(angle_deg))
    return np.array([[c, -s, cx - c * cx + s * cy + shift[0]],
                     [s, c, cy - s * cx - c * cy + shift[1]]], dtype=np.float64)


def _apply(matrix: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2],
            matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2])


def _outside(x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    return (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)


def _flow(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.stack([dx, dy], axis=-1).astype(np.float32)


def affine_pair(height: int, width: int, matrix: np.ndarray, seed: int = 0) -> MotionPair:
    """The whole picture moves by an affine map: the point p of frame a is at ``matrix @ [p, 1]`` in b.

    ``matrix`` is 2x3 (see ``similarity``); it must be invertible.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    x, y = _grid(height, width)
    fx, fy = _apply(matrix, x, y)
    bx, by = _apply(inverse, x, y)
    nowhere = np.zeros((height, width), dtype=bool)
    return MotionPair(
        frame_a=_to_uint8(texture_at(x, y, seed)),
        frame_b=_to_uint8(texture_at(bx, by, seed)),
        flow_fw=_flow(fx - x, fy - y),
        flow_bw=_flow(bx - x, by - y),
        disoccluded=nowhere,
        out_of_frame=_outside(bx, by, height, width),
        foreground=nowhere.copy(),
    )


def translation_pair(height: int, width: int, shift: tuple[float, float], seed: int = 0) -> MotionPair:
    """The whole picture moves by ``shift`` = (dx, dy) pixels (sub-pixel shifts are exact too)."""
    return affine_pair(height, width, [[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], seed)


def _square_scene(height: int, width: int, corner: tuple[float, float], size: int,
                  background_offset: tuple[float, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame: float32 RGB (H, W, 3) and the bool (H, W) square.

    The background texture is moved by ``background_offset``; the square, with its own texture
    (``seed + 1``) fixed to it, has its top-left corner at ``corner`` = (x, y).
    """
    x, y = _grid(height, width)
    image = texture_at(x - background_offset[0], y - background_offset[1], seed)
    inside = _inside_square(x, y, corner, size)
    image[inside] = texture_at(x[inside] - corner[0], y[inside] - corner[1], seed + 1)
    return image, inside


def _inside_square(x: np.ndarray, y: np.ndarray, corner: tuple[float, float], size: int) -> np.ndarray:
    return (x >= corner[0]) & (x < corner[0] + size) & (y >= corner[1]) & (y < corner[1] + size)


def _default_corner(height: int, width: int, size: int) -> tuple[float, float]:
    return ((width - size) / 2.0, (height - size) / 2.0)


def moving_square_pair(height: int, width: int, *, size: int | None = None,
                       corner: tuple[float, float] | None = None,
                       velocity: tuple[float, float] = (6.0, 4.0),
                       background_velocity: tuple[float, float] = (0.0, 0.0),
                       seed: int = 0) -> MotionPair:
    """An opaque textured square moves by ``velocity`` over a background moving by ``background_velocity``.

    size: side in pixels (default: 0.3 * min(height, width)). corner: top-left (x, y) in frame a
    (default: centred). The pixels of b that the square uncovered are ``disoccluded``.
    """
    size = size if size is not None else int(0.3 * min(height, width))
    corner = corner if corner is not None else _default_corner(height, width, size)
    corner_b = (corner[0] + velocity[0], corner[1] + velocity[1])
    frame_a, square_a = _square_scene(height, width, corner, size, (0.0, 0.0), seed)
    frame_b, square_b = _square_scene(height, width, corner_b, size, background_velocity, seed)

    ones = np.ones((height, width))
    flow_fw = _flow(np.where(square_a, velocity[0], background_velocity[0] * ones),
                    np.where(square_a, velocity[1], background_velocity[1] * ones))
    flow_bw = -_flow(np.where(square_b, velocity[0], background_velocity[0] * ones),
                     np.where(square_b, velocity[1], background_velocity[1] * ones))
    x, y = _grid(height, width)
    sx, sy = x + flow_bw[..., 0], y + flow_bw[..., 1]
    return MotionPair(
        frame_a=_to_uint8(frame_a),
        frame_b=_to_uint8(frame_b),
        flow_fw=flow_fw,
        flow_bw=flow_bw,
        disoccluded=~square_b & _inside_square(sx, sy, corner, size),
        out_of_frame=_outside(sx, sy, height, width),
        foreground=square_b,
    )


def moving_square_clip(num_frames: int, height: int, width: int, *, size: int | None = None,
                       corner: tuple[float, float] | None = None,
                       velocity: tuple[float, float] = (3.0, 2.0),
                       background_velocity: tuple[float, float] = (0.0, 0.0),
                       seed: int = 0) -> np.ndarray:
    """uint8 RGB (T, H, W, 3): the scene of ``moving_square_pair`` over ``num_frames`` frames.

    Frame k has the square at ``corner + k * velocity`` and the background moved by
    ``k * background_velocity``: frames 0 and 1 are exactly ``moving_square_pair``'s two frames
    (same arguments), and every later pair moves the same way.
    """
    size = size if size is not None else int(0.3 * min(height, width))
    corner = corner if corner is not None else _default_corner(height, width, size)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for k in range(num_frames):
        square_corner = (corner[0] + k * velocity[0], corner[1] + k * velocity[1])
        offset = (k * background_velocity[0], k * background_velocity[1])
        frames[k] = _to_uint8(_square_scene(height, width, square_corner, size, offset, seed)[0])
    return frames


def endpoint_error(flow: np.ndarray, truth: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean end-point error |flow - truth| in pixels, over the bool (H, W) ``where`` (default all)."""
    error = np.linalg.norm(np.asarray(flow, np.float64) - truth, axis=-1)
    return float(error.mean() if where is None else error[where].mean())
