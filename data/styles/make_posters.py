#!/usr/bin/env python3
"""Paint the four original poster-style images the ``starwars_*`` models are trained on.

    python data/styles/make_posters.py            # writes data/styles/poster_{blue,red,green,orange}.jpg

The shipped ``starwars_<colour>`` models are named after the colour-keyed character posters of a
well-known film, which we may not ship. These are our own images in that spirit, drawn from nothing
but code and a fixed seed: a dark ground, one dominant hue, a large halftoned disc, crossing light
streaks, a star field, a jagged ridge, film grain and a vignette. Everything is first composed as a
grey "light" map in [0, 1] and only then coloured through a per-poster tone ramp, so each image is a
single hue from black through the colour to near-white, which is what a style network picks up.

To train a model under one of these names on your own poster instead, see docs/models.md ("The names,
and your own").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 704, 1024     # portrait, close to a one-sheet's 27 x 40 in


@dataclass(frozen=True)
class Poster:
    """One poster's colour ramp (RGB 0-255, dark to light) and composition."""

    colour: str
    ramp: tuple[tuple[int, int, int], ...]
    seed: int
    streak_angle: float       # degrees from horizontal of the main streak bundle
    disc_centre: tuple[float, float]   # (x, y) as fractions of (width, height)
    disc_radius: float        # fraction of the width


POSTERS = (
    Poster("blue", ((2, 3, 10), (8, 24, 70), (30, 90, 200), (120, 190, 255), (235, 248, 255)),
           seed=11, streak_angle=-28.0, disc_centre=(0.62, 0.34), disc_radius=0.42),
    Poster("red", ((8, 1, 1), (60, 6, 8), (175, 20, 22), (255, 110, 90), (255, 236, 228)),
           seed=23, streak_angle=31.0, disc_centre=(0.40, 0.30), disc_radius=0.46),
    Poster("green", ((1, 7, 3), (6, 45, 20), (30, 150, 70), (140, 235, 150), (236, 255, 238)),
           seed=37, streak_angle=-58.0, disc_centre=(0.55, 0.40), disc_radius=0.38),
    Poster("orange", ((9, 4, 1), (70, 28, 4), (210, 100, 15), (255, 190, 90), (255, 246, 228)),
           seed=41, streak_angle=17.0, disc_centre=(0.36, 0.38), disc_radius=0.44),
)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each float32 (HEIGHT, WIDTH)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return x + 0.5, y + 0.5


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _glow(img: np.ndarray, sigmas: tuple[float, ...], gains: tuple[float, ...]) -> np.ndarray:
    """A sharp layer plus blurred copies of itself: light that bleeds into the dark around it."""
    out = img.copy()
    for sigma, gain in zip(sigmas, gains):
        out += gain * cv2.GaussianBlur(img, (0, 0), sigma)
    return out


def background(p: Poster, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Near-black at the top, a faint haze rising towards the ridge line, a halo behind the disc."""
    haze = 0.16 * _smoothstep(0.15, 0.85, y / HEIGHT)
    cx, cy = p.disc_centre[0] * WIDTH, p.disc_centre[1] * HEIGHT
    dist = np.hypot(x - cx, y - cy) / (p.disc_radius * WIDTH)
    halo = 0.3 * np.exp(-((dist - 1.0).clip(0) ** 2) * 14.0)
    return haze + halo


def disc(p: Poster, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A lit sphere: brightness from a light direction, banded like a gas giant; 0 outside."""
    cx, cy = p.disc_centre[0] * WIDTH, p.disc_centre[1] * HEIGHT
    r = p.disc_radius * WIDTH
    dx, dy = (x - cx) / r, (y - cy) / r
    inside = 1.0 - _smoothstep(0.995, 1.005, np.hypot(dx, dy))
    dz = np.sqrt(np.clip(1.0 - dx * dx - dy * dy, 0.0, 1.0))
    light = np.array([-0.55, -0.45, 0.70], np.float32)
    shade = np.clip(dx * light[0] + dy * light[1] + dz * light[2], 0.0, 1.0)
    bands = 0.82 + 0.18 * np.sin(dy * 23.0 + 2.5 * np.sin(dx * 4.0 + p.seed))
    return inside * (0.08 + 0.72 * shade * bands)


def halftone(light: np.ndarray, x: np.ndarray, y: np.ndarray, cell: float = 9.0,
             angle_deg: float = 45.0) -> np.ndarray:
    """Print ``light`` with a rotated dot screen: each cell a dot whose area is the local light."""
    a = np.deg2rad(angle_deg)
    u = x * np.cos(a) + y * np.sin(a)
    v = -x * np.sin(a) + y * np.cos(a)
    du = u - (np.floor(u / cell) + 0.5) * cell
    dv = v - (np.floor(v / cell) + 0.5) * cell
    radius = cell * np.sqrt(np.clip(light, 0.0, 1.0) / np.pi)
    return 1.0 - _smoothstep(radius - 0.8, radius + 0.8, np.hypot(du, dv))


def streaks(p: Poster, rng: np.random.Generator) -> np.ndarray:
    """Long thin light blades in a bundle around one angle, plus a few stray ones; glowing."""
    layer = np.zeros((HEIGHT, WIDTH), np.float32)
    diag = float(np.hypot(WIDTH, HEIGHT))
    n_main = 7
    for i in range(n_main + 4):
        stray = i >= n_main
        angle = np.deg2rad(p.streak_angle + rng.normal(0, 25.0 if stray else 4.0))
        cx, cy = rng.uniform(0.1, 0.9) * WIDTH, rng.uniform(0.25, 0.8) * HEIGHT
        half = rng.uniform(0.15, 0.35 if stray else 0.6) * diag
        ex, ey = np.cos(angle) * half, np.sin(angle) * half
        pts = [(int(round(cx - ex)), int(round(cy - ey))), (int(round(cx + ex)), int(round(cy + ey)))]
        value = float(rng.uniform(0.35, 0.6) if stray else rng.uniform(0.7, 1.0))
        cv2.line(layer, pts[0], pts[1], value, thickness=1 if stray else int(rng.integers(1, 4)),
                 lineType=cv2.LINE_AA)
    return _glow(layer, sigmas=(2.0, 7.0, 22.0), gains=(1.2, 0.9, 0.6))


def stars(rng: np.random.Generator, count: int = 700) -> np.ndarray:
    """Scattered points, brighter ones rarer, the brightest with a cross flare."""
    layer = np.zeros((HEIGHT, WIDTH), np.float32)
    xs = rng.integers(0, WIDTH, count)
    ys = rng.integers(0, int(HEIGHT * 0.8), count)
    values = rng.pareto(3.0, count).astype(np.float32) * 0.25 + 0.1
    layer[ys, xs] = np.clip(values, 0.0, 1.0)
    for x0, y0 in zip(xs[values > 0.9], ys[values > 0.9]):
        for dx, dy in ((12, 0), (0, 12)):
            cv2.line(layer, (int(x0 - dx), int(y0 - dy)), (int(x0 + dx), int(y0 + dy)), 0.5,
                     1, cv2.LINE_AA)
    return _glow(layer, sigmas=(1.0, 3.0), gains=(1.5, 0.8))


def ridge(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 below a jagged mountain line across the lower fifth (a midpoint-displaced profile), else 0."""
    n = 129
    heights = np.zeros(n, np.float32)
    step, amp = n - 1, 0.09
    while step > 1:
        for i in range(step // 2, n - 1, step):
            heights[i] = 0.5 * (heights[i - step // 2] + heights[i + step // 2]) + rng.normal(0, amp)
        step, amp = step // 2, amp * 0.55
    line = (0.80 + heights) * HEIGHT
    profile = np.interp(x[0] / WIDTH, np.linspace(0.0, 1.0, n), line).astype(np.float32)
    return _smoothstep(-1.0, 1.0, y - profile[None, :])


def paint(p: Poster) -> np.ndarray:
    """The poster as uint8 RGB (HEIGHT, WIDTH, 3)."""
    rng = np.random.default_rng(p.seed)
    x, y = _grid()
    light = background(p, x, y)
    sphere = disc(p, x, y)
    light = np.maximum(light, 0.25 * light + halftone(sphere, x, y) * sphere.clip(0.35) * 1.1)
    light = light + streaks(p, rng) + stars(rng)
    light = light * (1.0 - 0.93 * ridge(rng, x, y))
    vignette = 1.0 - 0.55 * _smoothstep(0.45, 1.05, np.hypot(x / WIDTH - 0.5, y / HEIGHT - 0.45) * 1.6)
    light = np.clip(light * vignette + rng.normal(0.0, 0.035, light.shape).astype(np.float32), 0.0, 1.0)
    return colourize(light, p.ramp)


def colourize(light: np.ndarray, ramp: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """Map grey ``light`` in [0, 1] through the colour ramp (evenly spaced stops) to uint8 RGB."""
    stops = np.linspace(0.0, 1.0, len(ramp))
    channels = [np.interp(light, stops, [c[k] for c in ramp]) for k in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for poster_<colour>.jpg (default: beside this script)")
    parser.add_argument("--quality", type=int, default=88, help="JPEG quality (default 88)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for p in POSTERS:
        path = args.out / f"poster_{p.colour}.jpg"
        bgr = cv2.cvtColor(paint(p), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, args.quality]):
            raise SystemExit(f"could not write {path}")
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
