"""The onnx backend's engine: an exported network in onnxruntime, frames converted with numpy, so
a job on it loads neither torch nor its start-up (docs/backends.md, "Without torch").

    engine = OnnxStylizer(export_file, EngineConfig(device="cpu", backend="onnx"))
    out = engine(frames)                      # uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)

It is a :class:`vidstyle.infer.engine.FrameEngine`, as :class:`vidstyle.infer.stylize.Stylizer` is, so
:func:`vidstyle.infer.job.stylize_video` and :func:`vidstyle.infer.photo.stylize_photo` take either.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass

import numpy as np

from vidstyle.device import cap_threads, usable_cores
from vidstyle.errors import ConfigError
from vidstyle.infer.engine import FrameEngine, check_engine_config
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.models.backends import OnnxRunner

# Frames larger than this (pixels) run one at a time in a lean session (OnnxRunner's ``lean``) with
# all the threads: side by side they would double the peak memory (a 1080p job of the lite network:
# 1.33 GB against 0.63 GB), and the lean graph halves the network's own peak.
STREAMS_MAX_PIXELS = 1280 * 720


def split_threads(threads: int, streams: int, cores: int | None = None) -> tuple[int, int, int]:
    """(streams, threads per stream, threads in all) for ``threads`` CPU threads in all (0: one per
    usable core) and ``streams`` sessions (0: two when there are two threads or more).

    Frames side by side scale better than threads within one frame: on a 2-core CPU two
    single-threaded sessions ran the huang network's whole jobs 1.3-1.4x faster than one session
    with both threads (docs/benchmarks.md, "Two streams"). Threads and streams beyond the ``cores``
    (default: the usable ones) are capped at them, with a warning.
    """
    cores = cores or usable_cores()
    threads = cap_threads(threads, "--threads", cores) or cores
    streams = cap_threads(streams, "--streams", cores) or min(2, threads)
    return streams, max(1, threads // streams), threads


@dataclass(frozen=True)
class OnnxPlan:
    """The settings of an :class:`OnnxStylizer`: CPU, float32, batches of ``batch_size``, run by
    ``streams`` onnxruntime sessions at once with ``threads`` threads each; frames over
    STREAMS_MAX_PIXELS by one session with ``all_threads``."""

    batch_size: int = 1
    threads: int = 1
    streams: int = 1
    all_threads: int = 1
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
        streams, threads, all_threads = split_threads(config.threads, config.streams)
        return cls(batch_size=config.batch_size or 1, threads=threads, streams=streams,
                   all_threads=all_threads, queue_depth=config.queue_depth)


class OnnxStylizer(FrameEngine):
    """An ONNX export (:mod:`vidstyle.models.export`) ready to stylize frames on the CPU. Its plan's
    ``streams`` sessions run that many batches at once when it stylizes a stream (:meth:`pairs`);
    frames over STREAMS_MAX_PIXELS go one at a time through a lean session with all the threads."""

    def __init__(self, path: str | os.PathLike, config: EngineConfig | None = None):
        self.plan = OnnxPlan.from_config(config or EngineConfig(device="cpu", backend="onnx"))
        self.path = path
        self._idle: queue.SimpleQueue[OnnxRunner] = queue.SimpleQueue()
        for _ in range(self.plan.streams):
            self._idle.put(OnnxRunner(path, self.plan.threads))
        self._wide: OnnxRunner | None = None    # made for the first large frame
        self._wide_lock = threading.Lock()

    @property
    def streams(self) -> int:
        return self.plan.streams

    def streams_for(self, height: int, width: int) -> int:
        return 1 if self._large(height, width) else self.plan.streams

    @staticmethod
    def _large(height: int, width: int) -> bool:
        return height * width > STREAMS_MAX_PIXELS

    def network(self, x: np.ndarray) -> np.ndarray:
        """The network alone: float32 (N, 3, H, W) RGB in [0, 1] -> the same. Each call takes a
        session of its own, so up to ``streams`` threads may call it at once (large frames take
        turns in the one lean session with all the threads)."""
        if self._large(*x.shape[-2:]):
            with self._wide_lock:
                if self._wide is None:
                    self._wide = OnnxRunner(self.path, self.plan.all_threads, lean=True)
                return self._wide(x)
        runner = self._idle.get()
        try:
            return runner(x)
        finally:
            self._idle.put(runner)

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        # The conversions the torch engine does, in the same float32 operations: the two agree.
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        x /= 255.0
        y = self.network(x)
        y *= 255.0
        np.round(y, out=y)
        np.clip(y, 0.0, 255.0, out=y)
        return np.ascontiguousarray(y.astype(np.uint8).transpose(0, 2, 3, 1))
