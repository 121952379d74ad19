"""Which torch device a command computes on: the one place that reads ``--device``; and how many CPU
threads it may run (``--threads``, ``--streams``).

torch is imported only to resolve a device, so that the onnx path (no torch) can ask for the CPUs.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

from vidstyle.errors import ConfigError

if TYPE_CHECKING:
    import torch


def usable_cores() -> int:
    """The CPUs this process may run on (a container's or ``taskset``'s limit included)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def cap_threads(count: int | None, option: str = "--threads", cores: int | None = None) -> int | None:
    """``count`` threads (or streams), at most ``cores`` (default: :func:`usable_cores`): more only
    share the same CPUs, and tens of thousands of them exhaust the machine. None and 0 (automatic)
    pass unchanged. A cap is said in a warning naming ``option``."""
    cores = cores or usable_cores()
    if not count or count <= cores:
        return count
    warnings.warn(f"{option} {count}: capped at {cores}, the CPUs this process may use", stacklevel=2)
    return cores


def resolve_device(spec: str | None = "auto", default_index: int | None = None) -> torch.device:
    """``--device`` -> torch.device: "auto" (or None) is CUDA when PyTorch sees a GPU, else the CPU;
    "cpu", "cuda" and "cuda:N" are taken as given. A bare "cuda" gets ``default_index`` (e.g. the
    process's LOCAL_RANK under torchrun) when one is given.

    ConfigError (one line) for an unknown device, a device type other than CPU and CUDA, or CUDA
    asked for where PyTorch sees none.
    """
    import torch

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
