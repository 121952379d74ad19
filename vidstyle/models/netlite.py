"""The ``lite`` stylizing network: the shape of :mod:`vidstyle.models.net`'s networks at a fraction of the
cost.

Made for the CPU, where a 640x360 frame through ``huang`` takes about 5.5 G multiply-adds, most of them
in the residual blocks and the full-resolution decoder layer. ``lite`` keeps the encoder / residual /
decoder layout and the instance norms of the low-resolution stages, and changes what is expensive:

    encoder    conv 3x3   3 -> c1, stride 1, ReLU             (zero padding inside the conv: no pad op)
               conv 3x3  c1 -> c2, stride 2, IN, ReLU
               conv 3x3  c2 -> c3, stride 2, IN, ReLU
    residual   R blocks of c3: sep-IN-ReLU-sep-IN plus the identity skip
               (sep: depthwise 3x3 then pointwise 1x1, about 1/8 of a full 3x3 conv at 64 channels)
    decoder    pointwise c3 -> c2, upsample x2 (nearest), depthwise 3x3, pointwise c2 -> c2, ReLU
               pointwise c2 -> c1, upsample x2 (nearest), depthwise 3x3, ReLU
               conv 3x3  c1 -> 3, then sigmoid

The pointwise convs before each upsampling run at the lower resolution (a 1x1 conv commutes with
nearest upsampling), so the full-resolution layers only carry c1 = 8 channels. About 1.17 G
multiply-adds for a 640x360 frame with the defaults (8, 24, 64), 5 blocks.

It is meant to be distilled from a trained ``huang`` model (:mod:`vidstyle.training.distill`), and it can be
trained from scratch like the others (``train --net lite``). Input, output, padding and the tone gate
are :class:`vidstyle.models.net.StylizingNet`'s.

``lite2`` is ``lite`` with one instance norm instead of twelve: only the quarter-resolution encoder
stage keeps its norm (it sets each picture's contrast once, as the network sees it). The others are
where onnxruntime spends a third of lite's time: the norm itself and the conversions of its blocked
convolution layout to plain NCHW and back around each one (docs/benchmarks.md, "The lite network in
onnxruntime"). Its modules keep lite's places, with identities where lite has the dropped norms, so
the two share parameter names and :func:`fold_norms` turns a trained lite network into a lite2 one:
each dropped norm becomes the fixed scale and shift of its average statistics on some frames,
folded into the convolution before it, to start a distillation from.

:func:`widen` gives a trained lite or lite2 network wider stages that compute the same picture, so
a distillation into a wider student starts from a narrower network's weights (``distill --channels``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vidstyle.models.net import StylizingNet

# Whether each lite network has every instance norm (True) or only the quarter-resolution encoder's.
EVERY_NORM = {"lite": True, "lite2": False}


def _conv(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, padding=1, groups=groups)


def _norm(channels: int, keep: bool) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if keep else nn.Identity()


class SeparableResidual(nn.Module):
    """x + IN(sep(ReLU(IN(sep(x))))), sep = depthwise 3x3 then pointwise 1x1; without the two IN when
    not ``norms``."""

    def __init__(self, channels: int, norms: bool = True):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            _conv(c, c, groups=c), nn.Conv2d(c, c, 1), _norm(c, norms),
            nn.ReLU(inplace=True),
            _conv(c, c, groups=c), nn.Conv2d(c, c, 1), _norm(c, norms))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PointwiseUp(nn.Module):
    """Pointwise c_in -> c_out at the low resolution, nearest upsampling x2, depthwise 3x3, then an
    optional pointwise c_out -> c_out (``mix``), and ReLU."""

    def __init__(self, c_in: int, c_out: int, mix: bool):
        super().__init__()
        self.reduce = nn.Conv2d(c_in, c_out, 1)
        self.spatial = _conv(c_out, c_out, groups=c_out)
        self.mix = nn.Conv2d(c_out, c_out, 1) if mix else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.spatial(F.interpolate(self.reduce(x), scale_factor=2.0, mode="nearest"))
        if self.mix is not None:
            y = self.mix(y)
        return F.relu(y)


class LiteStyleNet(StylizingNet):
    """The ``lite`` network, or ``lite2`` with one norm (see the module docstring): channels (c1, c2,
    c3), res_blocks, tone. ``forward`` and ``forward_padded`` (padding, the tone gate) are
    :class:`StylizingNet`'s."""

    def __init__(self, channels: Sequence[int] = (8, 24, 64), res_blocks: int = 5, name: str = "lite",
                 tone: float = 0.0):
        super().__init__()
        if name not in EVERY_NORM:
            raise ValueError(f"unknown lite network {name!r}")
        every = EVERY_NORM[name]
        c1, c2, c3 = (int(c) for c in channels)
        self.tone = float(tone)
        self.config = {"name": name, "channels": [c1, c2, c3], "res_blocks": int(res_blocks)}
        if self.tone > 0:
            self.config["tone"] = self.tone
        self.encoder = nn.Sequential(
            nn.Sequential(_conv(3, c1), nn.ReLU(inplace=True)),
            nn.Sequential(_conv(c1, c2, 2), _norm(c2, every), nn.ReLU(inplace=True)),
            nn.Sequential(_conv(c2, c3, 2), nn.InstanceNorm2d(c3, affine=True), nn.ReLU(inplace=True)))
        self.residuals = nn.Sequential(*(SeparableResidual(c3, every) for _ in range(res_blocks)))
        self.decoder = nn.Sequential(PointwiseUp(c3, c2, mix=True), PointwiseUp(c2, c1, mix=False),
                                     _conv(c1, 3))

    def forward_ungated(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the tone gate, on a padded input."""
        return torch.sigmoid(self.decoder(self.residuals(self.encoder(x))))


def _dropped_norms(net: LiteStyleNet) -> list[tuple[nn.Sequential, int]]:
    """Where the norms lite2 drops sit, in forward order: (the Sequential, the norm's index in it);
    the module before each norm is the convolution that feeds it."""
    places = [(net.encoder[1], 1)]
    for block in net.residuals:
        places += [(block.body, 2), (block.body, 6)]
    return places


def _input_of(module: nn.Module, net: LiteStyleNet, frames: torch.Tensor) -> torch.Tensor:
    """What ``module`` (inside ``net``) receives when ``net`` runs on ``frames``."""
    seen: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda _module, inputs, _output: seen.append(inputs[0]))
    try:
        net.forward_ungated(frames)
    finally:
        hook.remove()
    return seen[0]


@torch.no_grad()
def fold_norms(net: LiteStyleNet, frames: torch.Tensor) -> LiteStyleNet:
    """A ``lite2`` network made from a trained ``lite`` one: each norm lite2 drops becomes a fixed
    per-channel scale and shift, from that norm's input statistics on ``frames`` (RGB [0, 1],
    (N, 3, H, W), sides multiples of 4), averaged over the frames, and is folded into the
    convolution before it. The norms are folded in forward order, each measured on the network with
    the earlier ones already folded. On a single frame the result equals ``net`` on that frame."""
    if net.config["name"] != "lite":
        raise ValueError(f"fold_norms takes a lite network, not {net.config['name']!r}")
    work = copy.deepcopy(net).float().eval().cpu()
    frames = frames.float().cpu()
    for parent, index in _dropped_norms(work):
        conv, norm = parent[index - 1], parent[index]
        y = _input_of(norm, work, frames)
        mean = y.mean(dim=(2, 3)).mean(dim=0)
        var = y.var(dim=(2, 3), unbiased=False).mean(dim=0)
        scale = norm.weight / torch.sqrt(var + norm.eps)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias.copy_((conv.bias - mean) * scale + norm.bias)
        parent[index] = nn.Identity()
    folded = LiteStyleNet(net.config["channels"], net.config["res_blocks"], name="lite2", tone=net.tone)
    folded.load_state_dict(work.state_dict())
    return folded


@torch.no_grad()
def widen(net: LiteStyleNet, channels: Sequence[int], seed: int = 0) -> LiteStyleNet:
    """``net`` with wider stages (c1, c2, c3), each at least ``net``'s, computing the same output.

    Every tensor of ``net`` fills the leading corner of the wider network's. A new channel's own
    weights (what it reads, its depthwise kernel, its bias) keep the wider network's fresh
    initialisation (seeded by ``seed``), and every weight by which an old channel would read a new
    one is zero: the old channels compute what they did, the new ones are computed but not yet read,
    and training opens them (the zero weights get gradients from the first step). A new norm channel
    starts at scale 1 and shift 0, as a fresh norm does."""
    c_old = [int(c) for c in net.config["channels"]]
    c_new = [int(c) for c in channels]
    if len(c_new) != 3 or any(new < old for new, old in zip(c_new, c_old)):
        raise ValueError(f"widen: channels {c_new} must be three widths, each at least {c_old}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wide = LiteStyleNet(c_new, net.config["res_blocks"], name=net.config["name"], tone=net.tone)
    old_state = net.state_dict()
    for key, tensor in wide.state_dict().items():
        old = old_state[key].to(tensor.dtype)
        corner = tuple(slice(0, n) for n in old.shape)
        tensor[corner] = old
        if tensor.dim() == 4 and tensor.shape[1] > old.shape[1]:   # a conv reading new channels
            tensor[: old.shape[0], old.shape[1]:] = 0
    return wide
