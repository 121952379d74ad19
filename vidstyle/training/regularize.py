"""Stability terms that need no flow files: the output should move with the scene and ignore noise.

The temporal loss only sees the motions of the training clips. These terms test the network on
motions and noise drawn at random for every batch, on video frames and photos alike (after Wang et
al. 2020, "Consistent Video Style Transfer via Compound Regularization"):

compound  mean over (N, C, H, W) of m * (net(warp(I, f) + n) - warp(net(I), f))^2

with f a random smooth flow (a global shift plus a smooth local deformation, pixels), n Gaussian
pixel noise and m the pixels whose sample point ``x + f(x)`` lies inside the frame. A network whose
texture is a function of the scene commutes with the warp and ignores the noise, so the term is 0;
texture re-drawn from pixel noise, or anchored to the image grid instead of the surfaces ("boiling"),
makes it large. With ``noise_std = 0`` it is pure motion equivariance; with ``max_shift = 0`` pure
noise robustness. RGB in [0, 1], so its scale is that of the temporal loss.

At a fractional shift the warp resamples ``net(I)`` bilinearly, which blurs it: the compound term
then also charges sharp strokes that do follow the motion. The exact-shift term has no resampling:

shift     mean over (N, C, H', W') of (net(I[y:, x:] + n) - net(I)[y:, x:])^2

for a window of the frame moved by whole pixels (y, x) in 0..SUBGRID_SHIFT each, not both 0, compared
away from the window's border. Moves smaller than the 4-pixel grid of the networks' two halving
stages are where their strokes are redrawn (benchmarks/shift_response.py).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vidstyle.training.losses import warp

_DEFORMATION_GRID = 4   # the local deformation is bicubic over a grid of this many control points a side
SUBGRID_SHIFT = 3       # the exact-shift term's largest move, pixels: under the networks' 4-pixel grid
SHIFT_MARGIN = 8        # pixels left out at the border of the shifted window (its padding differs)
SHIFT_MIN_SIZE = SUBGRID_SHIFT + 2 * SHIFT_MARGIN + 1   # the smallest frame side the exact-shift term takes


def random_smooth_flow(n: int, height: int, width: int, max_shift: float, *,
                       device: torch.device | str = "cpu", generator: torch.Generator | None = None
                       ) -> torch.Tensor:
    """(n, 2, H, W) float32 flows in pixels: a uniform global shift in [-max_shift, max_shift] per
    axis plus a smooth deformation of about max_shift / 2 pixels (bicubic over a 4x4 grid)."""
    shift = (torch.rand(n, 2, 1, 1, generator=generator) * 2.0 - 1.0) * max_shift
    control = torch.randn(n, 2, _DEFORMATION_GRID, _DEFORMATION_GRID, generator=generator) * (max_shift / 2)
    local = F.interpolate(control, size=(height, width), mode="bicubic", align_corners=True)
    return (shift + local).to(device)


def inside_mask(flow: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) float: 1 where x + flow(x) lies inside the (H, W) frame, flow (N, 2, H, W)."""
    _, _, height, width = flow.shape
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    sx, sy = xs + flow[:, 0], ys + flow[:, 1]
    inside = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
    return inside.unsqueeze(1).float()


def _add_noise(images: torch.Tensor, noise_std: float, generator: torch.Generator | None) -> torch.Tensor:
    """``images`` plus Gaussian pixel noise of ``noise_std`` (drawn on the CPU), clamped to [0, 1]."""
    if noise_std <= 0:
        return images
    noise = torch.randn(images.shape, generator=generator).to(images.device, images.dtype)
    return (images + noise_std * noise).clamp(0.0, 1.0)


def compound_loss(net: nn.Module, frames: torch.Tensor, outputs: torch.Tensor, flow: torch.Tensor,
                  noise_std: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The compound term of the module docstring for N frames.

    frames: the network's inputs, RGB [0, 1] (N, 3, H, W); outputs: ``net(frames)`` (gradients flow
    through both sides); flow: (N, 2, H, W) pixels; noise_std: standard deviation of the Gaussian
    pixel noise added to the warped frames (RGB [0, 1] units; the noisy frames are clamped to [0, 1]).
    """
    moved = _add_noise(warp(frames, flow), noise_std, generator)
    diff = net(moved).float() - warp(outputs, flow).float()
    return (inside_mask(flow) * diff.square()).mean()


def shift_loss(net: nn.Module, frames: torch.Tensor, outputs: torch.Tensor, noise_std: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The exact-shift term of the module docstring for N frames (one move for the batch).

    frames, outputs: as for :func:`compound_loss`; frames at least SHIFT_MIN_SIZE on both sides."""
    _, _, height, width = frames.shape
    window_h, window_w = height - SUBGRID_SHIFT, width - SUBGRID_SHIFT
    if min(height, width) < SHIFT_MIN_SIZE:
        raise ValueError(f"frames of {height}x{width} are too small for the exact-shift term")
    move = torch.randint(1, (SUBGRID_SHIFT + 1) ** 2, (), generator=generator).item()   # never (0, 0)
    y, x = divmod(move, SUBGRID_SHIFT + 1)
    moved = _add_noise(frames[:, :, y:y + window_h, x:x + window_w], noise_std, generator)
    diff = net(moved).float() - outputs[:, :, y:y + window_h, x:x + window_w].float()
    m = SHIFT_MARGIN
    return diff[:, :, m:window_h - m, m:window_w - m].square().mean()
