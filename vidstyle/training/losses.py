"""The hybrid loss of two-frame synergic training: content, style, total variation and temporal.

Normalizations (the weights in :class:`LossWeights` only mean something together with these):

content   mean over (N, C, H, W) of (phi(out) - phi(in))^2, phi = VGG-19 activations (Caffe scale:
          inputs 0-255, so relu4_2 activations are O(1..100)); summed over the content layers.
style     sum over style layers of the mean over (N, C, C) of (G(out) - G(style))^2, with the Gram
          matrix G = F F^T / (C H W) of the (C, H*W) activations F (:func:`gram`).
tv        mean over (N, C) and all horizontally and vertically neighbouring pixel pairs of the squared
          difference, on RGB in [0, 1].
temporal  mean over (N, C, H, W) of mask * (out_t1 - warp(out_t, flow_bw))^2, RGB in [0, 1]; masked
          pixels count in the denominator, as in the paper (D = H W C). Luminance-aware (ReCoNet,
          Gao et al. 2018; ``luminance=True``): the input's own change of luma between the frames,
          Y_t1 - warp(Y_t), is taken off every channel's difference first, so a change of light in
          the scene is not counted as flicker.
feature temporal (ReCoNet): the same masked mean on the network's bottleneck features (1/4 of the
          frame's side), with the flow and mask brought down to their grid
          (:func:`feature_temporal_loss`).

Content and style are taken on both frames of a pair (the batch holds frames t and t+1 of N pairs).
Gram matrices and every loss are computed in float32, even under bf16 autocast: a Gram matrix sums
H*W products, which bf16's 8-bit mantissa cannot hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from vidstyle.models.net import luma
from vidstyle.training.vgg import VGG19

STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")
CONTENT_LAYERS = ("relu4_2",)
TERMS = ("content", "style", "tv", "temporal")


@dataclass
class LossWeights:
    """Multipliers of the four terms (see the module docstring for what each term is).

    Tuned by short CPU runs (128 px crops, Starry Night, DAVIS clips + photos), judged on the
    previews and on the output's masked warping error: a stronger style weight with a negligible
    temporal term gave the strongest texture and the most flicker, and raising the temporal weight
    to 3e7 (the default) cut the warping error several times over while the style stays obvious.
    What the defaults give: docs/training.md, "A recipe for steady video" (benchmarks/temporal_gain.py).
    The paper's numbers (1, 10, 1e-3, 1e4) belong to another normalization and do not carry over.
    """

    content: float = 1.0
    style: float = 2.0
    tv: float = 1.0e6
    temporal: float = 3.0e7

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (N, C, C) of activations (N, C, H, W), normalized by C*H*W, in float32."""
    n, c, h, w = features.shape
    f = features.float().reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum over the layers of ``targets`` of the mean squared activation difference."""
    return sum(F.mse_loss(features[k].float(), targets[k].float()) for k in targets)


def style_loss(features: Mapping[str, torch.Tensor],
               target_grams: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum over the layers of ``target_grams`` ((1 or N, C, C)) of the mean squared Gram difference."""
    return sum(((gram(features[k]) - g) ** 2).mean() for k, g in target_grams.items())


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (both directions) of (N, C, H, W) images."""
    images = images.float()
    dy = images[..., 1:, :] - images[..., :-1, :]
    dx = images[..., :, 1:] - images[..., :, :-1]
    return (dy.square().sum() + dx.square().sum()) / (dy.numel() + dx.numel())


def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Differentiable ``out(x) = images(x + flow(x))``, bilinear: the torch twin of
    ``vidstyle.flow.optical.warp``.

    images: (N, C, H, W); flow: (N, 2, H, W), pixels (dx, dy), on the grid of the output. Points
    outside the image take the nearest border pixel (``padding_mode="border"``, the same as OpenCV's
    BORDER_REPLICATE); with ``align_corners=True`` pixel centres sit at -1 and +1 of the grid, so pixel
    x maps to ``2 x / (W - 1) - 1`` exactly. ``warp(out_t, flow_bw)`` predicts out_t1.
    """
    n, _, h, w = images.shape
    ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
    flow = flow.float()
    # A side of one pixel has no extent to normalize by; any grid value samples that single pixel.
    sx = 2.0 * (xs + flow[:, 0]) / max(w - 1, 1) - 1.0
    sy = 2.0 * (ys + flow[:, 1]) / max(h - 1, 1) - 1.0
    grid = torch.stack([sx, sy], dim=-1)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(images.dtype)


def temporal_loss(out_t: torch.Tensor, out_t1: torch.Tensor, flow_bw: torch.Tensor,
                  mask: torch.Tensor, frames: tuple[torch.Tensor, torch.Tensor] | None = None
                  ) -> torch.Tensor:
    """Mean over (N, C, H, W) of mask * (out_t1 - warp(out_t, flow_bw))^2.

    out_t, out_t1: (N, C, H, W). flow_bw: (N, 2, H, W), pixels, from t+1 to t on the grid of t+1.
    mask: (N, 1, H, W) or (N, H, W), 1 where the warp is reliable, 0 to ignore a pixel.
    ``frames``: the inputs (frame_t, frame_t1), RGB; when given, the loss is luminance-aware: the
    input's luma change ``luma(frame_t1) - warp(luma(frame_t))`` is taken off each channel's
    difference, so an output that follows a change of light exactly costs nothing.
    """
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    diff = out_t1.float() - warp(out_t, flow_bw).float()
    if frames is not None:
        frame_t, frame_t1 = frames
        diff = diff - (luma(frame_t1.float()) - warp(luma(frame_t.float()), flow_bw))
    return (mask.float() * diff.square()).mean()


def feature_temporal_loss(features_t: torch.Tensor, features_t1: torch.Tensor, flow_bw: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
    """The temporal loss on feature maps (N, C, h, w) of frames whose flow and mask are at the
    frames' size (N, 2, H, W) and (N, 1, H, W): the flow is resized to (h, w) and scaled to its
    pixels, and a feature pixel counts only where its whole block of frame pixels is reliable."""
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    height, width = flow_bw.shape[-2:]
    h, w = features_t.shape[-2:]
    flow = F.interpolate(flow_bw.float(), size=(h, w), mode="bilinear", align_corners=False)
    flow = flow * torch.tensor([w / width, h / height], device=flow.device).view(1, 2, 1, 1)
    small_mask = -F.adaptive_max_pool2d(-mask.float(), (h, w))      # min over each block
    diff = features_t1.float() - warp(features_t, flow).float()
    return (small_mask * diff.square()).mean()


class HybridLoss(nn.Module):
    """The four weighted terms for a batch of N pairs, with style targets computed once.

    vgg: the loss network (deep enough for every layer used). style_image: RGB [0, 1] (1, 3, H, W).
    """

    def __init__(self, vgg: VGG19, style_image: torch.Tensor, weights: LossWeights | None = None,
                 style_layers: Sequence[str] = STYLE_LAYERS, content_layers: Sequence[str] = CONTENT_LAYERS,
                 luminance: bool = False):
        super().__init__()
        self.vgg = vgg
        self.weights = weights or LossWeights()
        self.luminance = luminance      # the temporal term luminance-aware (ReCoNet)
        self.style_layers = tuple(style_layers)
        self.content_layers = tuple(content_layers)
        self.layers = tuple(dict.fromkeys(self.style_layers + self.content_layers))
        with torch.no_grad():
            features = vgg(style_image, self.style_layers)
        for name in self.style_layers:
            self.register_buffer(f"gram_{name}", gram(features[name]))

    @property
    def style_grams(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"gram_{name}") for name in self.style_layers}

    def forward(self, frames_t: torch.Tensor, frames_t1: torch.Tensor, out_t: torch.Tensor,
                out_t1: torch.Tensor, flow_bw: torch.Tensor, mask: torch.Tensor,
                targets: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Terms for N pairs: frames and outputs RGB [0, 1] (N, 3, H, W), flow_bw (N, 2, H, W) pixels,
        mask (N, 1, H, W). Returns ``{"content", "style", "tv", "temporal", "total"}`` (scalars;
        the terms unweighted, ``total`` the weighted sum). ``targets``: the content layers' features
        of frames t then t+1 (2N), if already known (cached), else computed here."""
        outputs = torch.cat([out_t, out_t1])
        if targets is None:
            with torch.no_grad():
                targets = self.vgg(torch.cat([frames_t, frames_t1]), self.content_layers)
        features = self.vgg(outputs, self.layers)
        terms = {
            "content": content_loss(features, targets),
            "style": style_loss(features, self.style_grams),
            "tv": tv_loss(outputs),
            "temporal": temporal_loss(out_t, out_t1, flow_bw, mask,
                                      (frames_t, frames_t1) if self.luminance else None),
        }
        weights = self.weights.as_dict()
        terms["total"] = sum(weights[k] * terms[k] for k in TERMS)
        return terms
