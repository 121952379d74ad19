"""Where and how a training run computes: device, torchrun process group, autocast and memory format,
decided once by :func:`setup_device` and passed down (train, distill and the model card read it)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vidstyle.device import cap_threads, resolve_device


@dataclass
class Setup:
    """Where and how the run computes (decided once, passed down)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    distributed: bool = False
    channels_last: bool | None = None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def master(self) -> bool:
        return self.rank == 0

    def autocast(self, enabled: bool) -> contextlib.AbstractContextManager:
        if self.is_cuda and enabled:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def memory_format(self) -> torch.memory_format:
        on = self.is_cuda if self.channels_last is None else self.channels_last
        return torch.channels_last if on else torch.contiguous_format


def setup_device(spec: str = "auto", threads: int | None = None,
                 channels_last: bool | None = None) -> Setup:
    """Resolve ``--device`` (auto, cpu, cuda, cuda:N) and join the torchrun process group if any.

    threads: CPU threads (None: torch's choice). channels_last: memory format of the networks'
    weights and activations (None: on CUDA only; benchmarks/train_bench.py measures both on CPU).

    Under torchrun (WORLD_SIZE in the environment) each process takes GPU LOCAL_RANK, or the CPU
    with the gloo backend when the device is the CPU.
    """
    device = resolve_device(spec, default_index=int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if threads:
        torch.set_num_threads(cap_threads(threads))
    if "WORLD_SIZE" not in os.environ:
        return Setup(device, channels_last=channels_last)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Setup(device, dist.get_rank(), dist.get_world_size(), distributed=True,
                 channels_last=channels_last)
