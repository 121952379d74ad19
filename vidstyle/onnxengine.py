"""The onnx backend's engine: an exported network in onnxruntime, frames converted with numpy, so
a job on it loads neither torch nor its start-up (README, "Backends, and the whole job against a
per-frame peer").

    engine = OnnxStylizer(export_file, EngineConfig(device="cpu", backend="onnx"))
    out = engine(frames)                      # uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)

It is a :class:`vidstyle.engine.FrameEngine`, as :class:`vidstyle.stylize.Stylizer` is, so
:func:`vidstyle.job.stylize_video` and :func:`vidstyle.photo.stylize_photo` take either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vidstyle.backends import OnnxRunner
from vidstyle.engine import FrameEngine, check_engine_config
from vidstyle.errors import ConfigError
from vidstyle.inferconfig import EngineConfig


@dataclass(frozen=True)
class OnnxPlan:
    """The settings of an :class:`OnnxStylizer`: CPU, float32, batches of ``batch_size``.
    ``threads`` 0 is onnxruntime's default (one per core)."""

    batch_size: int = 1
    threads: int = 0
    queue_depth: int = 4
    device: str = "cpu"
    device_type: str = "cpu"
    backend: str = "onnx"
    compile: bool = False

    @classmethod
    def from_config(cls, config: EngineConfig) -> OnnxPlan:
        """The plan for ``config``; ConfigError for settings only the torch backend has."""
        check_engine_config(config, cuda=False)
        if config.device not in ("auto", "cpu"):
            raise ConfigError("--backend onnx runs on the CPU only; use --device cpu or --backend torch")
        if config.compile:
            raise ConfigError("--compile is for the torch backend; the onnx backend runs onnxruntime")
        return cls(batch_size=config.batch_size or 1, threads=config.threads,
                   queue_depth=config.queue_depth)


class OnnxStylizer(FrameEngine):
    """An ONNX export (:mod:`vidstyle.export`) ready to stylize frames on the CPU."""

    def __init__(self, path: str | os.PathLike, config: EngineConfig | None = None):
        self.plan = OnnxPlan.from_config(config or EngineConfig(device="cpu", backend="onnx"))
        self.runner = OnnxRunner(path, self.plan.threads)

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        # The conversions the torch engine does, in the same float32 operations: the two agree.
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        x /= 255.0
        y = self.runner(x)
        y *= 255.0
        np.round(y, out=y)
        np.clip(y, 0.0, 255.0, out=y)
        return np.ascontiguousarray(y.astype(np.uint8).transpose(0, 2, 3, 1))
