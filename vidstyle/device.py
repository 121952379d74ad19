"""Which torch device a command computes on: the one place that reads ``--device``."""

from __future__ import annotations

import torch

from vidstyle.errors import ConfigError


def resolve_device(spec: str | None = "auto", default_index: int | None = None) -> torch.device:
    """``--device`` -> torch.device: "auto" (or None) is CUDA when PyTorch sees a GPU, else the CPU;
    "cpu", "cuda" and "cuda:N" are taken as given. A bare "cuda" gets ``default_index`` (e.g. the
    process's LOCAL_RANK under torchrun) when one is given.

    ConfigError (one line) for an unknown device, a device type other than CPU and CUDA, or CUDA
    asked for where PyTorch sees none.
    """
    if spec is None or spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {spec!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU here "
                              "(try --device cpu)")
        if device.index is None and default_index is not None:
            device = torch.device("cuda", default_index)
    return device
