"""The PyTorch inference engine: a stylizing network and a stream of frames in, stylized frames out.

:class:`Stylizer` is the :class:`vidstyle.infer.engine.FrameEngine` on PyTorch; the whole job (decode,
engine, encode, each in its own thread) is :func:`vidstyle.infer.job.stylize_video`, importable from
here too. The job's settings are :mod:`vidstyle.infer.inferconfig`.

Device and precision are decided in one place, :func:`plan`:

- CUDA: fp16 weights and activations, channels_last, batches of 8.
- CPU: fp32, batches of 1, torch's intra-op threads on all cores. ``torch.compile`` speeds the
  network up on CPU (inductor runs the convolutions channels_last and fuses pad,
  instance norm and ReLU) but costs seconds to compile on first use (cached for later runs), so
  the default ``compile=None`` turns it on only for jobs long enough to repay that. Speeds and
  compile times: docs/benchmarks.md, "Inference on a CPU" (from benchmarks/infer_bench.py).
- CPU, jobs too short to repay a compile: onnxruntime on the network's ONNX export
  (:mod:`vidstyle.infer.onnxengine`, no torch needed there), chosen by
  :class:`vidstyle.infer.engines.StylizerPool`; the rule is :mod:`vidstyle.models.backends`.

Any frame size works: the network pads (reflect) to the size it needs and crops back.

On a CPU shared with other work (our own decoder and encoder included) OpenMP threads should wait
passively; every ``vidstyle`` command sets OMP_WAIT_POLICY for that before torch is imported
(:func:`vidstyle.cli.set_openmp_wait_policy`). A program using this module directly sets it itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vidstyle.device import cap_threads, resolve_device
from vidstyle.errors import ConfigError
from vidstyle.infer.engine import FrameEngine, check_engine_config
from vidstyle.infer.inferconfig import CUDA_BATCH, EngineConfig, InferOptions  # noqa: F401 (re-exported)

# Below this much work (frames x pixels) compiling on CPU may cost more than it saves: 120 frames
# at 640x360, where the frames' saving overtakes a first compile (docs/benchmarks.md, "Inference on a CPU").
AUTO_COMPILE_MIN_PIXELS = 120 * 640 * 360


@dataclass(frozen=True)
class Plan:
    """The settings :func:`plan` resolved from an EngineConfig for one device."""

    device: torch.device
    dtype: torch.dtype
    batch_size: int
    channels_last: bool
    compile: bool
    threads: int
    queue_depth: int
    backend: str = "torch"

    @property
    def device_type(self) -> str:
        return self.device.type


def plan(config: EngineConfig, work_pixels: int | None = None) -> Plan:
    """Resolve ``config`` for PyTorch on its device. ``work_pixels`` (frames x height x width of the
    job, if known) lets ``compile=None`` decide whether compiling pays on CPU (on CUDA it stays off
    unless asked for). Which backend a job runs on is decided before, by
    :class:`vidstyle.infer.engines.StylizerPool`; ConfigError here for ``backend="onnx"``."""
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    check_engine_config(config, cuda)
    if config.backend == "onnx":
        raise ConfigError("Stylizer runs PyTorch; the onnx backend's engine comes from "
                          "vidstyle.infer.engines.StylizerPool (or OnnxStylizer on an exported file)")
    compile_ = config.compile
    if compile_ is None:
        compile_ = not cuda and work_pixels is not None and work_pixels >= AUTO_COMPILE_MIN_PIXELS
    return Plan(device=device,
                dtype=torch.float16 if (cuda and config.half is not False) else torch.float32,
                batch_size=config.batch_size or (CUDA_BATCH if cuda else 1),
                channels_last=cuda,
                compile=bool(compile_),
                threads=cap_threads(config.threads) or torch.get_num_threads(),
                queue_depth=config.queue_depth)


class Stylizer(FrameEngine):
    """A network ready to stylize frames on one device.

        stylizer = Stylizer(loaded.net, EngineConfig(device="cpu"))
        out = stylizer(frames)                  # uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)
        for frame_in, frame_out in stylizer.pairs(iter_frames("clip.mp4")): ...

    The network (RGB [0, 1] (N, 3, H, W) -> same) is moved to the plan's device and dtype in place.
    PyTorch only: :class:`vidstyle.infer.engines.StylizerPool` chooses between it and onnxruntime.
    """

    def __init__(self, net: torch.nn.Module, config: EngineConfig | None = None,
                 work_pixels: int | None = None):
        self.plan = p = plan(config or EngineConfig(), work_pixels)
        if p.device.type == "cpu" and p.threads != torch.get_num_threads():
            torch.set_num_threads(p.threads)
        memory_format = torch.channels_last if p.channels_last else torch.preserve_format
        self.net = net.eval().requires_grad_(False).to(p.device, p.dtype, memory_format=memory_format)
        self._compiled = torch.compile(self.net, dynamic=False) if p.compile else None
        # Set for a job by vidstyle.infer.job: the stabilizer's blend, run on the network's
        # outputs where they are (vidstyle.infer.stabilize_torch.TorchBlend).
        self.blend: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def compiled(self) -> bool:
        """Whether the network runs compiled (False after a failed compile fell back to eager)."""
        return self._compiled is not None

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        if self._compiled is not None and n < self.plan.batch_size:
            # A short last batch would make the compiled graph recompile for a new shape; padding
            # it with copies of its last frame costs a fraction of one call.
            batch = np.concatenate([batch, np.repeat(batch[-1:], self.plan.batch_size - n, axis=0)])
        p = self.plan
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(p.device, non_blocking=True)
            # NHWC uint8 viewed as NCHW is channels_last already; CPU eager wants it contiguous.
            x = x.permute(0, 3, 1, 2).to(p.dtype).div_(255.0)
            if not p.channels_last:
                x = x.contiguous()
            y = self.forward(x)[:n]
            if self.blend is not None:
                y = self.blend(y)
            y = y.float().mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
            return y.permute(0, 2, 3, 1).cpu().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network alone on a prepared batch: the plan's device, dtype and memory format."""
        if self._compiled is not None:
            try:
                return self._compiled(x)
            except Exception as exc:  # no C++ compiler, unsupported op...: eager is always right
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                warnings.warn(f"torch.compile failed, running eagerly instead: {reason}",
                              RuntimeWarning, stacklevel=2)
                self._compiled = None
        return self.net(x)


# The whole job lives in vidstyle.infer.job (no torch there); these names stay importable from here.
from vidstyle.infer.job import (  # noqa: E402, F401
    VARIABLE_RATE_TIME_BASE,
    InferResult,
    default_output,
    fit_size,
    stylize_video,
)
