"""Optical flow between frames, the reliability mask of a flow pair, and warping (numpy/OpenCV only).

Flows are float32 (H, W, 2) in pixels, (dx, dy). ``flow_fw`` goes from frame t to t+1 on the grid of
t; ``flow_bw`` from t+1 to t on the grid of t+1. ``warp(frame_t, flow_bw)`` predicts frame t+1, and
``consistency_mask(flow_fw, flow_bw)`` says on the grid of t+1 where that prediction can be trusted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np

from vidstyle.errors import ConfigError

FLOW_METHODS = ("farneback", "dis", "deepflow")

TUTORIAL_FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
                      "poly_sigma": 1.2, "gaussian": False, "scale": 1.0, "reuse_forward": False}
"""The parameters of OpenCV's optical-flow tutorial, kept to compare the tuned defaults against."""

DEFAULT_PARAMS: dict[str, dict] = {
    "farneback": {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 1, "poly_n": 5,
                  "poly_sigma": 1.1, "gaussian": True, "scale": 0.75, "reuse_forward": True},
    "dis": {"preset": "medium"},
    "deepflow": {},
}
"""Default parameters per method, chosen by measurement (see below); keyword arguments override them.

farneback: ``cv2.calcOpticalFlowFarneback``'s parameters, plus ``gaussian`` (its Gaussian window
flag), ``scale`` (flow computed on frames resized by this factor, then upsampled with its vectors
scaled) and ``reuse_forward`` (compute_pair starts the backward flow from -flow_fw).
dis: ``preset``, one of "ultrafast", "fast", "medium". deepflow: no parameters.

Speed (pairs/s of compute_pair on one core), end-point error on synthetic known motion and warp
error on real pairs of each method and preset: docs/flows.md, "Flow methods and speed" (its table from
benchmarks/flow_bench_methods.py). The Farneback defaults are both faster and better on real video
than the OpenCV tutorial's parameters (slightly worse on synthetic motion, both far below a pixel):
working at 0.75 scale with one iteration pays for the Gaussian window (sharper flow at motion
boundaries), and starting the backward flow from the forward one lowers the warp error further at
no cost. ``levels`` above 3 change nothing at 640x360: OpenCV stops the pyramid before a level
falls below 32 pixels, and a lower ``scale`` (0.6-0.67) loses a pyramid level to that rule and
fails on large motions. The DIS default, "medium", is the most accurate preset; "fast" trades
accuracy for speed.
"""

_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

# Smaller pictures leave nothing to match (DIS compares 8-pixel patches; Farneback fits 5x5 polynomials).
_MIN_SIDE = 8
_DIS_MIN_SIDE = 32   # smallest side OpenCV's DIS is given (see _dis)

# A flow function maps two grey uint8 (H, W) images and an optional initial flow to float32 (H, W, 2).
_FlowFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]


def compute_flow(a: np.ndarray, b: np.ndarray, method: str = "farneback", **params) -> np.ndarray:
    """Dense optical flow from image ``a`` to image ``b``.

    a, b: uint8 RGB (H, W, 3), same size. method: one of FLOW_METHODS; params override
    DEFAULT_PARAMS[method]. Returns float32 (H, W, 2): for each pixel x of a, where it is in b
    minus x, in pixels (dx, dy). Raises ConfigError for an unknown method or parameter.
    """
    flow_fn, _ = _flow_function(method, params)
    gray_a, gray_b = _gray_pair(a, b)
    return flow_fn(gray_a, gray_b, None)


def compute_pair(a: np.ndarray, b: np.ndarray, method: str = "farneback",
                 **params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward flow, backward flow and their consistency mask for consecutive frames a (t), b (t+1).

    a, b: uint8 RGB (H, W, 3). Returns flow_fw float32 (H, W, 2) on the grid of a, flow_bw float32
    (H, W, 2) on the grid of b, and mask uint8 (H, W) on the grid of b (see ``consistency_mask``).
    """
    flow_fn, reuse_forward = _flow_function(method, params)
    gray_a, gray_b = _gray_pair(a, b)
    flow_fw = flow_fn(gray_a, gray_b, None)
    flow_bw = flow_fn(gray_b, gray_a, -flow_fw if reuse_forward else None)
    return flow_fw, flow_bw, consistency_mask(flow_fw, flow_bw)


def consistency_mask(flow_fw: np.ndarray, flow_bw: np.ndarray) -> np.ndarray:
    """uint8 (H, W) on the grid of frame t+1: 1 where warping frame t with flow_bw is reliable.

    flow_fw, flow_bw: float32 (H, W, 2) in pixels. With w = flow_bw(x) and w' = flow_fw(x + w)
    (bilinear), a pixel is 0 when any check of Ruder et al. (2016) fails:
    disoccluded, |w + w'|^2 > 0.01 (|w|^2 + |w'|^2) + 0.5; motion boundary,
    |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002 with (u, v) = flow_bw; out of frame, x + w outside
    frame t. Gradients are central differences (one-sided at the border), so both sides of a flow
    discontinuity are flagged. The mask is not smoothed.
    """
    _check_flow(flow_fw, "flow_fw")
    _check_flow(flow_bw, "flow_bw")
    if flow_fw.shape != flow_bw.shape:
        raise ConfigError(f"flow_fw {flow_fw.shape} and flow_bw {flow_bw.shape} differ in size")
    height, width = flow_bw.shape[:2]
    w = flow_bw.astype(np.float32, copy=False)
    points = _sample_points(w)
    w_back = cv2.remap(flow_fw.astype(np.float32, copy=False), points, None, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    map_x, map_y = points[..., 0], points[..., 1]

    w_sq = _squared_norm(w)
    disoccluded = _squared_norm(w + w_back) > 0.01 * (w_sq + _squared_norm(w_back)) + 0.5
    du_dy, du_dx = np.gradient(w[..., 0])
    dv_dy, dv_dx = np.gradient(w[..., 1])
    boundary = du_dx * du_dx + du_dy * du_dy + dv_dx * dv_dx + dv_dy * dv_dy > 0.01 * w_sq + 0.002
    outside = (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)
    return (~(disoccluded | boundary | outside)).astype(np.uint8)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``out(x) = image(x + flow(x))`` bilinearly; outside points take the nearest border pixel.

    image: (H, W) or (H, W, C), uint8 or float32. flow: float32 (H, W, 2) in pixels, on the grid
    of the output. Returns the same dtype and shape as ``image``. ``warp(frame_t, flow_bw)``
    predicts frame t+1.
    """
    _check_flow(flow, "flow")
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[:2] != flow.shape[:2]:
        raise ConfigError(f"cannot warp an image of shape {image.shape} with a flow of shape {flow.shape}")
    if _RELATIVE_MAP:   # the same points, without building x + flow(x) first
        out = cv2.remap(image, flow.astype(np.float32, copy=False), None,
                        cv2.INTER_LINEAR | _RELATIVE_MAP, borderMode=cv2.BORDER_REPLICATE)
    else:
        out = cv2.remap(image, _sample_points(flow), None, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    # OpenCV drops a trailing channel axis of length 1.
    return out.reshape(image.shape)


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Picture a flow field: uint8 RGB (H, W, 3); hue = direction, saturation = magnitude.

    flow: (H, W, 2) in pixels. Zero flow is white; a flow of ``max_magnitude`` pixels or more is
    fully saturated (default: the largest magnitude in the field). Directions in image axes (y down):
    right is red, down yellow-green, left cyan, up violet.
    """
    _check_flow(flow, "flow")
    dx = flow[..., 0].astype(np.float32)
    dy = flow[..., 1].astype(np.float32)
    magnitude, angle = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    magnitude = np.nan_to_num(magnitude, nan=0.0, posinf=0.0)
    if max_magnitude is None:
        max_magnitude = float(magnitude.max()) if magnitude.size else 0.0
    if max_magnitude < 0:
        raise ConfigError(f"max_magnitude must not be negative, got {max_magnitude}")
    saturation = np.clip(magnitude / max(max_magnitude, 1e-9), 0.0, 1.0)
    hsv = np.stack([angle, saturation, np.ones_like(saturation)], axis=-1)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# --- flow methods ---------------------------------------------------------------------------------

def check_method(method: str) -> None:
    """ConfigError unless ``method`` is one of FLOW_METHODS (for settings checked before any work)."""
    if method not in FLOW_METHODS:
        raise ConfigError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")


def _flow_function(method: str, params: dict) -> tuple[_FlowFn, bool]:
    """Validate ``params`` for ``method``; return the flow function and whether bw starts from -fw."""
    check_method(method)
    unknown = sorted(set(params) - set(DEFAULT_PARAMS[method]))
    if unknown:
        known = ", ".join(sorted(DEFAULT_PARAMS[method])) or "none"
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for flow method {method!r} "
                          f"(accepted: {known})")
    merged = {**DEFAULT_PARAMS[method], **params}
    if method == "farneback":
        return _farneback(merged), bool(merged["reuse_forward"])
    if method == "dis":
        return _dis(merged), False
    return _deepflow(), False


def _farneback(p: dict) -> _FlowFn:
    pyr_scale = _number(p, "pyr_scale", 0.0, 0.9)
    levels, winsize, iterations = (_number(p, name, 0, math.inf, integer=True)
                                   for name in ("levels", "winsize", "iterations"))
    poly_sigma = _number(p, "poly_sigma", 0.0, math.inf)
    scale = _number(p, "scale", 0.0, 1.0)
    if p["poly_n"] not in (5, 7):
        raise ConfigError(f"farneback poly_n must be 5 or 7, got {p['poly_n']!r}")
    flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if p["gaussian"] else 0

    def run(gray_a: np.ndarray, gray_b: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        height, width = gray_a.shape
        size = (max(_MIN_SIDE, round(width * scale)), max(_MIN_SIDE, round(height * scale)))
        if size != (width, height):
            gray_a = cv2.resize(gray_a, size, interpolation=cv2.INTER_AREA)
            gray_b = cv2.resize(gray_b, size, interpolation=cv2.INTER_AREA)
            if init is not None:
                init = _resize_flow(init, size)
        flow = cv2.calcOpticalFlowFarneback(
            gray_a, gray_b, init, pyr_scale, levels, winsize, iterations, int(p["poly_n"]), poly_sigma,
            flags | (cv2.OPTFLOW_USE_INITIAL_FLOW if init is not None else 0))
        return _resize_flow(flow, (width, height))

    return run


def _number(p: dict, name: str, low: float, high: float, integer: bool = False) -> float:
    """Farneback parameter ``p[name]`` checked to be a number in (low, high]; ConfigError otherwise."""
    value = p[name]
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not is_number or not low < value <= high or (integer and value != int(value)):
        kind = "integer" if integer else "number"
        wanted = f"a positive {kind}" if high == math.inf else f"a {kind} in ({low:g}, {high:g}]"
        raise ConfigError(f"farneback {name} must be {wanted}, got {value!r}")
    return int(value) if integer else float(value)


def _dis(p: dict) -> _FlowFn:
    if p["preset"] not in _DIS_PRESETS:
        raise ConfigError(f"dis preset must be one of {', '.join(_DIS_PRESETS)}, got {p['preset']!r}")
    preset = _DIS_PRESETS[p["preset"]]

    def run(gray_a: np.ndarray, gray_b: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        # OpenCV's DIS crashes the process, or raises, on some frames under 32 pixels on a side
        # (8x64, 12x200, 31x200 among them); they are extended by edge replication and cropped back.
        height, width = gray_a.shape
        pad = ((0, max(0, _DIS_MIN_SIDE - height)), (0, max(0, _DIS_MIN_SIDE - width)))
        if pad[0][1] or pad[1][1]:
            gray_a, gray_b = (np.pad(g, pad, mode="edge") for g in (gray_a, gray_b))
            if init is not None:
                init = np.pad(init, (*pad, (0, 0)), mode="edge")
        return cv2.DISOpticalFlow.create(preset).calc(gray_a, gray_b, init)[:height, :width]

    return run


def _deepflow() -> _FlowFn:
    if not hasattr(cv2, "optflow"):
        raise ConfigError("flow method 'deepflow' needs OpenCV's contrib modules "
                          "(pip install opencv-contrib-python-headless)")

    def run(gray_a: np.ndarray, gray_b: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        return cv2.optflow.createOptFlow_DeepFlow().calc(gray_a, gray_b, None)

    return run


# --- helpers --------------------------------------------------------------------------------------

def _resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample float32 (h, w, 2) flow to ``size`` = (width, height), scaling the vectors with it."""
    height, width = flow.shape[:2]
    if (width, height) == size:
        return flow
    out = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= size[0] / width
    out[..., 1] *= size[1] / height
    return out


def _gray_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, image in (("a", a), ("b", b)):
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ConfigError(f"optical flow needs uint8 RGB images (H, W, 3); image {name} is {got}")
    if a.shape != b.shape:
        raise ConfigError(f"optical flow needs two images of the same size, got {a.shape} and {b.shape}")
    if min(a.shape[:2]) < _MIN_SIDE:
        raise ConfigError(f"images of {a.shape[1]}x{a.shape[0]} are too small for optical flow")
    return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)


def _check_flow(flow: np.ndarray, name: str) -> None:
    if not (isinstance(flow, np.ndarray) and flow.ndim == 3 and flow.shape[2] == 2):
        got = getattr(flow, "shape", type(flow).__name__)
        raise ConfigError(f"{name} must be a float32 (H, W, 2) array, got {got}")


# OpenCV 4.10 and later can remap by a flow itself (x + map(x)), with the same result as by the
# points it names; older versions need the points.
_RELATIVE_MAP = getattr(cv2, "WARP_RELATIVE_MAP", 0)


@functools.lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """float32 (H, W, 2), read-only: each pixel's own (x, y)."""
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid = np.dstack([x, y])
    grid.setflags(write=False)
    return grid


def _sample_points(flow: np.ndarray) -> np.ndarray:
    """float32 (H, W, 2): x + flow(x), the points a warp by ``flow`` samples (one two-channel map,
    as cv2.remap takes it: a single addition, no per-channel copies)."""
    return _pixel_grid(*flow.shape[:2]) + flow.astype(np.float32, copy=False)


def _squared_norm(v: np.ndarray) -> np.ndarray:
    return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]
