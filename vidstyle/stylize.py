"""The inference engine: a stylizing network and a stream of frames in, stylized frames out.

Three stages run at once, joined by small bounded queues so memory stays flat however long the
video: a thread decodes, the calling thread runs the network on batches, a thread encodes
(:mod:`vidstyle.background`). The job's settings are :mod:`vidstyle.inferconfig`.

Device and precision are decided in one place, :func:`plan`:

- CUDA: fp16 weights and activations, channels_last, batches of 8.
- CPU: fp32, batches of 1, torch's intra-op threads on all cores. ``torch.compile`` speeds the
  network up on CPU (inductor runs the convolutions channels_last and fuses pad,
  instance norm and ReLU) but costs seconds to compile on first use (cached for later runs), so
  the default ``compile=None`` turns it on only for jobs long enough to repay that. Speeds and
  compile times: README, "Inference" (its table from benchmarks/infer_bench.py).
- CPU, jobs too short to repay a compile: onnxruntime on the network's ONNX export when it is
  installed, see :mod:`vidstyle.backends` and README, "Backends".

Any frame size works: the network pads (reflect) to the size it needs and crops back.

On a CPU shared with other work (our own decoder and encoder included) OpenMP threads should wait
passively; every ``vidstyle`` command sets OMP_WAIT_POLICY for that before torch is imported
(:func:`vidstyle.cli.set_openmp_wait_policy`). A program using this module directly sets it itself.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vidstyle.backends import OnnxRunner, cached_export, choose_backend
from vidstyle.background import BackgroundSink, in_background
from vidstyle.device import resolve_device
from vidstyle.errors import ConfigError, VideoError
from vidstyle.inferconfig import CUDA_BATCH, EngineConfig, InferOptions, check_options
from vidstyle.net import StyleNet
from vidstyle.stabilize import Stabilizer, StabilizerConfig

# Below this much work (frames x pixels) compiling on CPU may cost more than it saves: 120 frames
# at 640x360, where the frames' saving overtakes a first compile (README, "Inference").
AUTO_COMPILE_MIN_PIXELS = 120 * 640 * 360
# Clock of the output when the input's frame rate varies: MPEG's 90 kHz, finer than any source's.
VARIABLE_RATE_TIME_BASE = Fraction(1, 90000)


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


def plan(config: EngineConfig, work_pixels: int | None = None, exportable: bool = True) -> Plan:
    """Resolve ``config`` for its device. ``work_pixels`` (frames x height x width of the job, if
    known) lets ``compile=None`` decide whether compiling pays on CPU (on CUDA it stays off unless
    asked for) and ``backend="auto"`` whether to run onnxruntime, if the network is ``exportable``."""
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    if config.batch_size < 0 or config.threads < 0 or config.queue_depth < 1:
        raise ConfigError("batch size and threads must be >= 0 (0: automatic), queue depth >= 1")
    if config.half and not cuda:
        raise ConfigError("fp16 inference is for CUDA only; on CPU it would be slower, not faster")
    backend = choose_backend(config.backend, device.type, work_pixels, exportable=exportable)
    if backend == "onnx" and config.compile:
        raise ConfigError("--compile is for the torch backend; the onnx backend runs onnxruntime")
    compile_ = config.compile
    if compile_ is None:
        compile_ = (not cuda and backend == "torch" and work_pixels is not None
                    and work_pixels >= AUTO_COMPILE_MIN_PIXELS)
    return Plan(device=device,
                dtype=torch.float16 if (cuda and config.half is not False) else torch.float32,
                batch_size=config.batch_size or (CUDA_BATCH if cuda else 1),
                channels_last=cuda,
                compile=bool(compile_),
                threads=config.threads or torch.get_num_threads(),
                queue_depth=config.queue_depth,
                backend=backend)


class Stylizer:
    """A network ready to stylize frames on one device.

        stylizer = Stylizer(loaded.net, EngineConfig(device="cpu"))
        out = stylizer(frames)                  # uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)
        for frame_in, frame_out in stylizer.pairs(iter_frames("clip.mp4")): ...

    The network (RGB [0, 1] (N, 3, H, W) -> same) is moved to the plan's device and dtype in place.
    """

    def __init__(self, net: torch.nn.Module, config: EngineConfig | None = None,
                 work_pixels: int | None = None):
        self.plan = p = plan(config or EngineConfig(), work_pixels, isinstance(net, StyleNet))
        if p.device.type == "cpu" and p.threads != torch.get_num_threads():
            torch.set_num_threads(p.threads)
        memory_format = torch.channels_last if p.channels_last else torch.preserve_format
        self.net = net.eval().requires_grad_(False).to(p.device, p.dtype, memory_format=memory_format)
        self._compiled = torch.compile(self.net, dynamic=False) if p.compile else None
        self._onnx = OnnxRunner(cached_export(self.net), p.threads) if p.backend == "onnx" else None

    @property
    def compiled(self) -> bool:
        """Whether the network runs compiled (False after a failed compile fell back to eager)."""
        return self._compiled is not None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Stylize a batch: uint8 RGB (N, H, W, 3) -> uint8 RGB (N, H, W, 3), same size."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoError(f"frames must be uint8 RGB (N, H, W, 3), got {frames.dtype} {frames.shape}")
        if len(frames) == 0:
            return frames.copy()
        return np.concatenate([self._run_batch(frames[i:i + self.plan.batch_size])
                               for i in range(0, len(frames), self.plan.batch_size)])

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
            y = y.float().mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
            return y.permute(0, 2, 3, 1).cpu().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network alone on a prepared batch: the plan's device, dtype and memory format."""
        if self._onnx is not None:
            return torch.from_numpy(self._onnx(x.numpy()))
        if self._compiled is not None:
            try:
                return self._compiled(x)
            except Exception as exc:  # no C++ compiler, unsupported op...: eager is always right
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                warnings.warn(f"torch.compile failed, running eagerly instead: {reason}",
                              RuntimeWarning, stacklevel=2)
                self._compiled = None
        return self.net(x)

    def pairs(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stylize a stream: yields (input, output) uint8 (H, W, 3) pairs in order; decoding of
        ``frames`` runs ahead in a thread. Frames may change size; a batch never mixes sizes."""
        batch: list[np.ndarray] = []
        for frame in in_background(frames, self.plan.queue_depth * self.plan.batch_size):
            if batch and frame.shape != batch[0].shape:
                yield from self._flush(batch)
            batch.append(frame)
            if len(batch) == self.plan.batch_size:
                yield from self._flush(batch)
        yield from self._flush(batch)

    def _flush(self, batch: list[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stylize and yield the pending frames, leaving ``batch`` empty."""
        if batch:
            frames = list(batch)
            batch.clear()
            yield from zip(frames, self._run_batch(np.stack(frames)))

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Stylized frames, uint8 (H, W, 3), in order (see :meth:`pairs`)."""
        return (out for _, out in self.pairs(frames))


# --- the whole job: a video file in, a stylized video file out ------------------------------------

@dataclass
class InferResult:
    """What a job produced; ``truncated`` holds the reader's message when the input was cut short."""

    output: Path
    frames: int
    width: int
    height: int
    seconds: float
    device: str
    compiled: bool
    truncated: str | None = None
    backend: str = "torch"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.inf


def default_output(input_path: str | os.PathLike, model_name: str) -> Path:
    """``INPUT_STEM.MODEL.mp4`` beside the input (a frame folder counts as a file of its name)."""
    path = Path(input_path)
    stem = path.name if path.is_dir() else path.stem
    return path.parent / f"{stem}.{model_name}.mp4"


def fit_size(width: int, height: int, max_size: int | None) -> tuple[int, int] | None:
    """(width, height) scaled so the longest side is at most ``max_size``; None when it already is."""
    if max_size is None or max(width, height) <= max_size:
        return None
    if max_size < 8:
        raise ConfigError(f"--max-size must be at least 8 pixels, got {max_size}")
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_job(input_path: Path, output: Path, options: InferOptions) -> None:
    """Refuse what would fail late or destroy data, before any work is done."""
    from vidstyle.encode import check_output_path

    check_output_path(output, options.lossless, source=input_path)
    check_options(options)


def stylize_video(input_path: str | os.PathLike, output: str | os.PathLike,
                  net: torch.nn.Module | Stylizer, engine: EngineConfig | None = None,
                  options: InferOptions | None = None, progress: bool = False) -> InferResult:
    """Stylize a video file or frame folder into ``output`` (written atomically).

    Keeps the frame rate and frame count (frame t at t / fps; each frame's own time when the
    input's rate varies), the upright orientation, and the audio streams of the stylized time span
    (copied when the container allows). A truncated input gives the frames that decode, written to
    ``NAME.partial.EXT`` instead of ``output`` (``result.output`` says which), with
    ``result.truncated`` set. ``net`` maps RGB [0, 1] (N, 3, H, W) to the same; it is moved to the
    engine's device. A ready Stylizer may be given instead (``engine`` is then ignored), to reuse
    one across videos.
    """
    from vidstyle.encode import VideoWriter, partial_path
    from vidstyle.video import iter_timed_frames, probe, variable_rate

    engine = engine or EngineConfig()
    options = options or InferOptions()
    input_path, output = Path(input_path), Path(output)
    _check_job(input_path, output, options)
    info = probe(input_path)
    size = fit_size(info.width, info.height, options.max_size)
    width, height = size or (info.width, info.height)
    first = round(options.start * info.fps)
    stop = info.num_frames if options.duration is None else min(
        info.num_frames, round((options.start + options.duration) * info.fps))
    total = max(stop - first, 1)
    stylizer = (net if isinstance(net, Stylizer)
                else Stylizer(net, engine, work_pixels=total * width * height))

    source_errors: list[VideoError] = []
    times: collections.deque[float] = collections.deque()  # output seconds of the frames in flight

    timed = variable_rate(input_path)
    window = dict(start=options.start, duration=options.duration)
    if timed:  # frame numbers do not follow time: decode from the start, select by time below
        window = dict(start=0.0, duration=None)
    end = math.inf if options.duration is None else options.start + options.duration

    def frames() -> Iterator[np.ndarray]:
        # A cut file yields what decodes, then raises: keep those frames, report the cut at the end.
        try:
            with contextlib.closing(iter_timed_frames(input_path, size=size, **window)) as source:
                for seconds, frame in source:
                    if timed and seconds >= end:
                        return
                    if not timed or seconds >= options.start:
                        times.append(seconds - options.start)
                        yield frame
        except VideoError as exc:
            source_errors.append(exc)

    result = InferResult(output, 0, width * (2 if options.side_by_side else 1), height, 0.0,
                         str(stylizer.plan.device), stylizer.compiled)
    stabilizer = Stabilizer(StabilizerConfig(strength=options.stabilize))
    started = time.perf_counter()
    audio = str(input_path) if info.has_audio else None
    time_base = VARIABLE_RATE_TIME_BASE if timed else None
    with VideoWriter(output, info.fps, lossless=options.lossless, crf=options.crf, preset=options.preset,
                     audio_from=audio, audio_start=options.start, time_base=time_base) as writer, \
            _progress_bar(total, progress) as bar, contextlib.closing(stylizer.pairs(frames())) as pairs:
        def emit(item: tuple[np.ndarray, np.ndarray, float]) -> None:
            # In the encoder's thread: the stabilizer needs the frames in order, and its OpenCV
            # calls release the GIL, so it overlaps the network's next frame.
            frame_in, frame_out, seconds = item
            frame_out = stabilizer(frame_in, frame_out)
            if options.post_process is not None:
                frame_out = options.post_process(frame_in, frame_out)
            writer.write(np.concatenate([frame_in, frame_out], axis=1) if options.side_by_side
                         else frame_out, seconds)

        sink = BackgroundSink(emit, stylizer.plan.queue_depth)
        try:
            for frame_in, frame_out in pairs:
                sink.put((frame_in, frame_out, times.popleft()))
                result.frames += 1
                bar.update(1)
            if source_errors and result.frames == 0:
                raise source_errors[0]
            if source_errors:  # never a cut video under the name that means "done"
                result.output = partial_path(output)
                writer.keep_as(result.output)
        except BaseException:
            sink.close(wait=False)
            raise
        sink.close()
    result.seconds = time.perf_counter() - started
    result.compiled = stylizer.compiled
    result.backend = stylizer.plan.backend
    result.truncated = str(source_errors[0]) if source_errors else None
    return result


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", disable=not enabled, dynamic_ncols=True, leave=False)
