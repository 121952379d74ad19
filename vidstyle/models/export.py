"""ONNX export of a stylizing network, to run it with onnxruntime (or any ONNX runtime) without PyTorch.

The exported graph has one input and one output, both float32 RGB in [0, 1], shape (N, 3, H, W), with
N, H and W dynamic::

    input  "frames"    float32 (N, 3, H, W)   RGB in [0, 1], H and W at least 5 pixels
    output "stylized"  float32 (N, 3, H, W)   RGB in [0, 1]

It is the network of :mod:`vidstyle.models.net` with its padding written so that the ONNX graph computes it
from the input's shape: reflect-pad right and bottom to a multiple of 4, run, crop back. For sides of 5
pixels or more this is exactly what ``StylizingNet.forward`` pads (its extra rules for sides under 5 pixels
need a branch on the size, which a traced graph cannot keep). The model card is stored in the file's
metadata under ``vidstyle_card`` (JSON).

Torch's TorchScript-based exporter (``dynamo=False``) is used: it needs nothing beyond torch and
``onnx``, while the dynamo exporter also needs ``onnxscript``.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vidstyle.errors import ModelError
from vidstyle.fsutil import atomic_output
from vidstyle.models.backends import MIN_SIDE
from vidstyle.models.net import is_stylizing_net

OPSET = 17
# The opsets the TorchScript exporter writes this graph in: from 11 (a pad computed from the input's
# shape) to 20 (the newest that exporter knows).
MIN_OPSET, MAX_OPSET = 11, 20
INPUT_NAME = "frames"
OUTPUT_NAME = "stylized"
CHECK_SIZE = (333, 241)  # (width, height) of the round-trip check: odd, and not a multiple of 4
CHECK_TOLERANCE = 1e-3
CARD_KEY = "vidstyle_card"


class ExportWriteError(ModelError):
    """The ONNX file could not be written (a full disk, a file-size limit, a read-only folder)."""


class ExportableNet(nn.Module):
    """``StylizingNet.forward`` with the pad computed from the input's shape inside the graph.

    RGB [0, 1] (N, 3, H, W) -> RGB [0, 1] (N, 3, H, W), for H, W >= MIN_SIDE; shares ``net``'s weights.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        # Traced as Shape/Mod ops, so one graph serves every size: pad to the next multiple of 4.
        pad_h = (4 - height % 4) % 4
        pad_w = (4 - width % 4) % 4
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.net.forward_padded(padded)[..., :height, :width]


def export_onnx(net: nn.Module, path: str | os.PathLike, card: Mapping[str, Any] | None = None, *,
                opset: int = OPSET, check: bool = True) -> Path:
    """Write ``net`` (a vidstyle network: :func:`vidstyle.models.net.is_stylizing_net`) as an ONNX file at
    ``path``, atomically.

    With ``check`` the file is run in onnxruntime on a random CHECK_SIZE batch of two before it is
    renamed into place, and a ModelError is raised if it differs from PyTorch by more than
    CHECK_TOLERANCE. ``card`` (the model card) goes into the file's metadata.
    """
    if not is_stylizing_net(net):
        raise ModelError(f"only vidstyle's stylizing networks can be exported, not {type(net).__name__}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"opset {opset} is not supported: give one from {MIN_OPSET} to {MAX_OPSET} "
                         f"(default {OPSET})")
    path = Path(path)
    if not path.parent.is_dir():
        raise ModelError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise ModelError(f"{path} is a folder; name the .onnx file to write")
    net = copy.deepcopy(net).float().eval().requires_grad_(False).to("cpu")  # the caller's stays put
    try:
        _write_checked(net, path, card, opset, check)
    except OSError as exc:   # a full disk or a file-size limit, in any of the writes
        hint = "; disk full?" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
        raise ExportWriteError(f"cannot write {path}: {exc.strerror or exc}{hint}") from None
    return path


def _write_checked(net: nn.Module, path: Path, card: Mapping[str, Any] | None, opset: int,
                   check: bool) -> None:
    example = torch.rand(1, 3, 64, 64)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with atomic_output(path) as tmp:
        with warnings.catch_warnings():
            # The TorchScript exporter warns about traced shape arithmetic (intended here) and its
            # own deprecation; neither is the user's concern.
            warnings.simplefilter("ignore")
            torch.onnx.export(ExportableNet(net), (example,), str(tmp), dynamo=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
                              opset_version=opset, do_constant_folding=True)
        _add_metadata(tmp, card)
        if check:
            check_export(net, tmp)


def _add_metadata(path: Path, card: Mapping[str, Any] | None) -> None:
    """Store the model card and the I/O contract in the ONNX file's metadata."""
    import onnx

    model = onnx.load(str(path))
    # Batch, height and width vary; the channels are RGB. The exporter cannot see through the crop
    # after padding and names the output's channel axis (e.g. "Slicestylized_dim_1"): say 3.
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4:
            dims[1].dim_value = 3
    model.doc_string = ("vidstyle stylizing network: input 'frames' float32 (N, 3, H, W) RGB in [0, 1], "
                        f"H, W >= {MIN_SIDE}; output 'stylized', same shape and range")
    if card is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = CARD_KEY, json.dumps(dict(card), sort_keys=True)
    onnx.save(model, str(path))


def check_export(net: nn.Module, path: str | os.PathLike, size: tuple[int, int] = CHECK_SIZE,
                 tolerance: float = CHECK_TOLERANCE) -> float:
    """Largest absolute difference between onnxruntime running ``path`` and PyTorch running ``net``
    on a random batch of two frames of ``size`` (width, height); ModelError above ``tolerance``."""
    from vidstyle.models.backends import OnnxRunner

    width, height = size
    x = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    x[1] *= 0.2   # a dark frame too, where the tone gate acts
    with torch.inference_mode():
        expected = net.float().eval()(x).numpy()
    got = OnnxRunner(path)(x.numpy())
    error = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not error <= tolerance:
        raise ModelError(f"the ONNX export of {Path(path).name} differs from PyTorch by {error:.3g} "
                         f"(tolerance {tolerance:g}) at {width}x{height}")
    return error


def read_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """The model card stored in an exported file's metadata, or None if it has none."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError, and others for bad files
        raise ModelError(f"{path} is not a readable ONNX file ({type(exc).__name__})") from None
    for entry in model.metadata_props:
        if entry.key == CARD_KEY:
            return json.loads(entry.value)
    return None
