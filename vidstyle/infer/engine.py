"""What every inference engine shares, without torch: uint8 frames in, batches to the network,
stylized uint8 frames out, in order.

:class:`FrameEngine` batches; a subclass runs one batch (:meth:`FrameEngine._run_batch`) and holds a
``plan`` with at least ``device`` (printable, e.g. "cpu"), ``device_type``, ``batch_size``,
``queue_depth``, ``backend`` and ``compile``. The engines: :class:`vidstyle.infer.stylize.Stylizer`
(PyTorch, eager or compiled) and :class:`vidstyle.infer.onnxengine.OnnxStylizer` (onnxruntime, no torch).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from vidstyle.background import in_background
from vidstyle.errors import ConfigError, VideoError

if TYPE_CHECKING:
    from vidstyle.infer.inferconfig import EngineConfig


def check_engine_config(config: EngineConfig, cuda: bool) -> None:
    """ConfigError unless batch size, threads and streams are >= 0 (0: automatic) and queue depth
    >= 1, and for fp16 (``config.half``) on a device that is not CUDA."""
    for option, value in (("--batch-size", config.batch_size), ("--threads", config.threads),
                          ("--streams", config.streams)):
        if value < 0:
            raise ConfigError(f"{option} must be >= 0 (0: automatic), got {value}")
    if config.queue_depth < 1:
        raise ConfigError(f"queue depth must be >= 1, got {config.queue_depth}")
    if config.half and not cuda:
        raise ConfigError("fp16 inference is for CUDA only; on CPU it would be slower, not faster")


class FrameEngine:
    """Batching and streaming of frames around a subclass's ``_run_batch``."""

    plan: Any

    @property
    def compiled(self) -> bool:
        """Whether the network runs compiled (only the torch engine compiles)."""
        return False

    @property
    def streams(self) -> int:
        """How many batches may be in the network at once; ``_run_batch`` must then be safe to call
        from that many threads."""
        return 1

    def streams_for(self, height: int, width: int) -> int:
        """How many batches of frames this size may be in the network at once (at most
        :attr:`streams`; large frames may go one at a time to bound the memory)."""
        return self.streams

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB (N, H, W, 3), N <= plan.batch_size -> uint8 RGB (N, H, W, 3)."""
        raise NotImplementedError

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Stylize a batch: uint8 RGB (N, H, W, 3) -> uint8 RGB (N, H, W, 3), same size."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoError(f"frames must be uint8 RGB (N, H, W, 3), got {frames.dtype} {frames.shape}")
        if len(frames) == 0:
            return frames.copy()
        return np.concatenate([self._run_batch(frames[i:i + self.plan.batch_size])
                               for i in range(0, len(frames), self.plan.batch_size)])

    def pairs(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stylize a stream: yields (input, output) uint8 (H, W, 3) pairs in order; decoding of
        ``frames`` runs ahead in a thread. Frames may change size; a batch never mixes sizes.
        With several :attr:`streams`, that many batches run at once in worker threads."""
        batches = self._batches(in_background(frames, self.plan.queue_depth * self.plan.batch_size))
        pool = (ThreadPoolExecutor(self.streams, thread_name_prefix="vidstyle-network")
                if self.streams > 1 else None)
        running: deque[tuple[list[np.ndarray], Future]] = deque()

        def finish(keep: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            """Yield the oldest running batches until at most ``keep`` are left."""
            while len(running) > keep:
                done, future = running.popleft()
                yield from zip(done, future.result())

        try:
            for batch in batches:
                streams = self.streams_for(*batch[0].shape[:2])
                if pool is None or streams == 1:   # after the others: one batch at a time in memory
                    yield from finish(0)
                    yield from zip(batch, self._run_batch(np.stack(batch)))
                else:
                    running.append((batch, pool.submit(self._run_batch, np.stack(batch))))
                    yield from finish(streams)      # one waiting beside them, so no stream idles
            yield from finish(0)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _batches(self, frames: Iterable[np.ndarray]) -> Iterator[list[np.ndarray]]:
        """Frames grouped into batches of at most plan.batch_size frames of one size."""
        batch: list[np.ndarray] = []
        for frame in frames:
            if batch and frame.shape != batch[0].shape:
                yield batch
                batch = []
            batch.append(frame)
            if len(batch) == self.plan.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Stylized frames, uint8 (H, W, 3), in order (see :meth:`pairs`)."""
        return (out for _, out in self.pairs(frames))
