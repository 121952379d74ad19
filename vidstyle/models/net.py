"""The stylizing networks: Huang et al.'s small one (default) and Johnson et al.'s larger one.

Both are the same encoder / residual / decoder shape, differing only in widths and end kernels:

    encoder    conv k x k   3 -> c1, stride 1     (each conv: reflection pad, conv, instance norm, ReLU)
               conv 3x3    c1 -> c2, stride 2
               conv 3x3    c2 -> c3, stride 2
    residual   R blocks of c3: conv-IN-ReLU-conv-IN, plus the identity skip
    decoder    upsample x2 (nearest), conv 3x3 c3 -> c2   (nearest upsampling then a conv avoids the
               upsample x2 (nearest), conv 3x3 c2 -> c1    checkerboard of transposed convolutions)
               conv k x k  c1 -> 3, stride 1, then sigmoid

=========  ============  ===========  ==========
name       channels      end kernel   parameters
=========  ============  ===========  ==========
huang      16, 32, 48    3            ~0.25 M
johnson    32, 64, 128   9            ~1.68 M
=========  ============  ===========  ==========

A third, ``lite`` (:mod:`vidstyle.models.netlite`), has the same layout with separable convolutions and a
slim full-resolution end, for fast CPU inference; it is built by :func:`build_net` too.

Output: ``sigmoid(z)``, which equals ``(tanh(z / 2) + 1) / 2``, i.e. the paper's tanh output moved to
[0, 1]; written as a sigmoid because it is one op. Input and output: RGB in [0, 1], (N, 3, H, W), any H
and W: the input is padded (reflect) to a multiple of 4 and at least 8 pixels so that both stride-2
stages divide evenly, and the output is cropped back to H x W.

Tone: instance norm discards each picture's brightness, so a black frame would come out as a flat
mid-grey picture. With ``tone = t > 0`` the output is multiplied by a gate that follows the input's
local brightness: ``clamp(L / t, 0, 1)``, L the input's luma (Rec. 601) averaged over 8x8 blocks and
upsampled bilinearly. Where the input is brighter than t nothing changes; below it the output darkens
in proportion, down to black for black input, keeping its hue. The gate has no parameters, so it can
be switched on for a trained network too.

A network is rebuilt from its small config dict (``net.config``, stored in model cards):
``build_net(**net.config)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vidstyle.errors import ModelError

_MULTIPLE = 4   # two stride-2 stages
_MIN_SIDE = 8   # so that the quarter-resolution maps are at least 2x2 (instance norm needs > 1 pixel)

_TONE_BLOCK = 8  # pixels averaged per side for the tone gate's local brightness
_LUMA = (0.299, 0.587, 0.114)

NET_DEFAULTS: dict[str, dict[str, Any]] = {
    "huang": {"channels": (16, 32, 48), "res_blocks": 5, "end_kernel": 3, "tone": 0.0},
    "johnson": {"channels": (32, 64, 128), "res_blocks": 5, "end_kernel": 9, "tone": 0.0},
    "lite": {"channels": (8, 24, 64), "res_blocks": 5, "tone": 0.0},   # vidstyle.models.netlite
    "lite2": {"channels": (8, 24, 64), "res_blocks": 5, "tone": 0.0},  # lite with one norm
}
NETS = frozenset(NET_DEFAULTS)


class ConvLayer(nn.Sequential):
    """Reflection pad, conv (k x k, ``stride``), then instance norm (``norm``) and ReLU (``relu``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, *,
                 relu: bool = True, norm: bool = True):
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride)]
        if norm:
            layers.append(nn.InstanceNorm2d(c_out, affine=True))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))): two 3x3 convs of ``channels`` with the identity skip."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels), ConvLayer(channels, channels, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour upsampling x2, then a 3x3 conv layer."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(c_in, c_out))


class StylizingNet(nn.Module):
    """What every stylizing network shares (``huang``, ``johnson`` and :mod:`vidstyle.models.netlite`'s
    ``lite``): padding and cropping around the network, and the tone gate after it. A subclass sets
    ``tone`` and ``config`` and defines :meth:`forward_ungated`."""

    tone: float
    config: dict[str, Any]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] (N, 3, H, W) -> stylized RGB [0, 1] (N, 3, H, W)."""
        height, width = x.shape[-2:]
        return self.forward_padded(pad_to_multiple(x))[..., :height, :width]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input already padded to sides that are multiples of 4 (and >= 8):
        RGB [0, 1] (N, 3, H, W) -> RGB [0, 1] (N, 3, H, W). ``forward`` pads and crops around it;
        the ONNX export pads inside its graph instead."""
        y = self.forward_ungated(x)
        if self.tone > 0:
            y = y * tone_gate(x, self.tone)
        return y

    def forward_ungated(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the tone gate, on a padded input (what :mod:`vidstyle.training.distill`
        matches)."""
        raise NotImplementedError


class StyleNet(StylizingNet):
    """Feed-forward stylizing network (see the module docstring for the layout).

    channels: widths (c1, c2, c3) of the three resolutions. res_blocks: residual blocks at 1/4
    resolution. end_kernel: kernel size of the first and last convolutions (odd). tone: luma
    threshold of the tone gate in [0, 1] (0: no gate; see the module docstring).
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 48), res_blocks: int = 5, end_kernel: int = 3,
                 name: str = "huang", tone: float = 0.0):
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.tone = float(tone)
        self.config = {"name": name, "channels": [c1, c2, c3], "res_blocks": int(res_blocks),
                       "end_kernel": int(end_kernel)}
        if self.tone > 0:   # absent from the configs of networks without the gate, as before it existed
            self.config["tone"] = self.tone
        self.encoder = nn.Sequential(
            ConvLayer(3, c1, end_kernel), ConvLayer(c1, c2, 3, 2), ConvLayer(c2, c3, 3, 2))
        self.residuals = nn.Sequential(*(ResidualBlock(c3) for _ in range(res_blocks)))
        self.decoder = nn.Sequential(
            UpsampleConv(c3, c2), UpsampleConv(c2, c1),
            ConvLayer(c1, 3, end_kernel, relu=False, norm=False))

    def forward_ungated(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the tone gate, on a padded input (what :mod:`vidstyle.training.distill`
        matches)."""
        return torch.sigmoid(self.decoder(self.residuals(self.encoder(x))))


def is_stylizing_net(module: Any) -> bool:
    """Whether ``module`` is one of vidstyle's stylizing networks (any name in NETS)."""
    return isinstance(module, StylizingNet)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (N, 1, H, W) of RGB images (N, 3, H, W), in their dtype."""
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def tone_gate(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1]: the input's local luma over ``threshold``, clamped to 1.

    x: RGB [0, 1] (N, 3, H, W) with H and W multiples of 4 (the padded input)."""
    blocks = F.avg_pool2d(luma(x), _TONE_BLOCK, ceil_mode=True, count_include_pad=False)
    local = F.interpolate(blocks, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return (local / threshold).clamp(max=1.0)


def pad_to_multiple(x: torch.Tensor) -> torch.Tensor:
    """Pad right and bottom so both sides are multiples of 4 and at least 8 pixels."""
    height, width = x.shape[-2:]
    pad_h = max(-(-height // _MULTIPLE) * _MULTIPLE, _MIN_SIDE) - height
    pad_w = max(-(-width // _MULTIPLE) * _MULTIPLE, _MIN_SIDE) - width
    if pad_h == 0 and pad_w == 0:
        return x
    # Reflection needs the pad to be smaller than the side; tiny inputs fall back to edge replication.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def build_net(name: str = "huang", **kwargs: Any) -> StylizingNet:
    """A fresh (untrained) network: ``name`` in NETS, ``kwargs`` override its defaults
    (``channels``, ``res_blocks``, ``end_kernel``). ``build_net(**net.config)`` rebuilds ``net``."""
    if name not in NET_DEFAULTS:
        raise ModelError(f"unknown network {name!r}; choose from {', '.join(sorted(NETS))}")
    unknown = set(kwargs) - set(NET_DEFAULTS[name])
    if unknown:
        raise ModelError(f"network {name!r} has no option(s) {', '.join(sorted(unknown))}")
    options = {**NET_DEFAULTS[name], **kwargs}
    if len(options["channels"]) != 3 or min(options["channels"]) < 1 or options["res_blocks"] < 0:
        raise ModelError(f"network {name!r}: channels must be three positive widths and res_blocks >= 0")
    if "end_kernel" in options and (options["end_kernel"] < 1 or options["end_kernel"] % 2 == 0):
        raise ModelError(f"network {name!r}: end_kernel must be odd, got {options['end_kernel']}")
    if not 0.0 <= options["tone"] <= 1.0:
        raise ModelError(f"network {name!r}: tone must be in [0, 1], got {options['tone']}")
    if name in ("lite", "lite2"):
        from vidstyle.models.netlite import LiteStyleNet

        return LiteStyleNet(name=name, **options)
    return StyleNet(name=name, **options)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (only those with requires_grad if ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
