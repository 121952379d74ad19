"""The whole job: a video file or frame folder in, a stylized video file out, on any engine.

Three stages run at once, joined by small bounded queues so memory stays flat however long the
video: a thread decodes (and works out the stabilizer's flow between input frames), the calling
thread runs the engine on batches, a thread encodes (:mod:`vidstyle.background`) after the
stabilizer's blend and the colour options. No torch here: with an
:class:`vidstyle.infer.onnxengine.OnnxStylizer` a job never loads it; given a network instead of an
engine, :func:`stylize_video` gets one for the job's size from :class:`vidstyle.infer.engines.StylizerPool`.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidstyle.background import BackgroundSink
from vidstyle.errors import ConfigError, VideoError
from vidstyle.infer.engine import FrameEngine
from vidstyle.infer.inferconfig import EngineConfig, InferOptions, check_options
from vidstyle.infer.stabilize import Motion, Stabilizer, StabilizerConfig

if TYPE_CHECKING:
    from torch import nn

    from vidstyle.infer.stabilize_torch import TorchBlend
    from vidstyle.io.video import VideoInfo

# Longest output name (bytes) this module derives: file systems take 255, and the hidden temporary
# (.NAME.XXXXXXXX.tmp) and a cut input's NAME.partial add 22 to it.
MAX_OUTPUT_NAME = 255 - 24
# Clock of the output when the input's frame rate varies: MPEG's 90 kHz, finer than any source's.
VARIABLE_RATE_TIME_BASE = Fraction(1, 90000)
# Where the stabilizer's blend runs beside a torch network instead of in the encoding thread: on a
# GPU (at 1080p the blend takes about 20 ms a frame on the CPU; benchmarks/pipeline_bench.py).
DEVICE_BLEND_TYPES = ("cuda",)


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
    return derived_output(path, path.name if path.is_dir() else path.stem, model_name, ".mp4")


def derived_output(input_path: Path, stem: str, model_name: str, suffix: str) -> Path:
    """``STEM.MODEL.SUFFIX`` beside ``input_path``, at most MAX_OUTPUT_NAME bytes long: a longer stem
    is cut and ends in ``~`` and a hash of the whole stem, so that two long names stay two."""
    tail = f".{model_name}{suffix}"
    if len(os.fsencode(stem + tail)) > MAX_OUTPUT_NAME:
        mark = f"~{zlib.crc32(os.fsencode(stem)):08x}"
        while stem and len(os.fsencode(stem + mark + tail)) > MAX_OUTPUT_NAME:
            stem = stem[:-1]
        stem += mark
    return input_path.parent / f"{stem}{tail}"


def fit_size(width: int, height: int, max_size: int | None) -> tuple[int, int] | None:
    """(width, height) scaled so the longest side is at most ``max_size``; None when it already is."""
    if max_size is None or max(width, height) <= max_size:
        return None
    if max_size < 8:
        raise ConfigError(f"--max-size must be at least 8 pixels, got {max_size}")
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class JobSize:
    """What a video job stylizes: ``frames`` frames (at least 1) from frame ``first`` on, at
    ``width`` x ``height`` pixels (after ``--max-size``; ``resized`` when that changed the size)."""

    first: int
    frames: int
    width: int
    height: int
    resized: bool

    @property
    def work_pixels(self) -> int:
        """Frames x pixels: what the backend and compile rules weigh."""
        return self.frames * self.width * self.height


def job_size(info: VideoInfo, options: InferOptions) -> JobSize:
    """The size of a job on a probed video (``--start``, ``--duration`` and ``--max-size`` applied)."""
    size = fit_size(info.width, info.height, options.max_size)
    width, height = size or (info.width, info.height)
    # min() before round(): a time such as 1e308 s is a frame number too large for a float.
    first = round(min(options.start * info.fps, info.num_frames))
    stop = info.num_frames if options.duration is None else round(
        min((options.start + options.duration) * info.fps, info.num_frames))
    return JobSize(first, max(stop - first, 1), width, height, size is not None)


def _check_job(input_path: Path, output: Path, options: InferOptions) -> None:
    """Refuse what would fail late or destroy data, before any work is done."""
    from vidstyle.io.encode import check_output_path

    check_output_path(output, options.lossless, source=input_path)
    check_options(options)


def stylize_video(input_path: str | os.PathLike, output: str | os.PathLike,
                  net: FrameEngine | nn.Module, engine: EngineConfig | None = None,
                  options: InferOptions | None = None, progress: bool = False,
                  on_frame: Callable[[int, int], None] | None = None) -> InferResult:
    """Stylize a video file or frame folder into ``output`` (written atomically).

    Keeps the frame rate and frame count (frame t at t / fps; each frame's own time when the
    input's rate varies), the upright orientation, and the audio streams of the stylized time span
    (copied when the container allows). A truncated input gives the frames that decode, written to
    ``NAME.partial.EXT`` instead of ``output`` (``result.output`` says which), with
    ``result.truncated`` set. ``net`` is a ready engine (a :class:`vidstyle.infer.engine.FrameEngine`:
    ``engine`` is then ignored; reuse one across videos) or a torch network mapping RGB [0, 1]
    (N, 3, H, W) to the same, run by the engine StylizerPool chooses for the job. ``on_frame(done, total)`` is
    called after each frame (``vidstyle serve`` shows progress with it; an exception it raises
    stops the job, and no output is left).
    """
    from vidstyle.io.encode import VideoWriter, partial_path
    from vidstyle.io.video import iter_timed_frames, probe, variable_rate

    engine = engine or EngineConfig()
    options = options or InferOptions()
    input_path, output = Path(input_path), Path(output)
    _check_job(input_path, output, options)
    info = probe(input_path)
    job = job_size(info, options)
    size = (job.width, job.height) if job.resized else None
    width, height, total = job.width, job.height, job.frames
    stylizer = net if isinstance(net, FrameEngine) else _engine_for(net, engine, job)

    source_errors: list[VideoError] = []
    times: collections.deque[float] = collections.deque()  # output seconds of the frames in flight
    # The stabilizer's flow and trust need only the input: the decoding thread works them out as it
    # goes, so that the encoding thread, which must blend in order, only blends; or, when the
    # network runs on a GPU, the network's thread blends there (vidstyle.infer.stabilize_torch).
    stabilizer = Stabilizer(StabilizerConfig(strength=options.stabilize))
    device_blend = _device_blend(stylizer, stabilizer.config)
    motions: collections.deque[Motion | None] = collections.deque()
    blend_motions = motions if device_blend is None else device_blend.motions

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
                        blend_motions.append(stabilizer.see(frame))
                        yield frame
        except VideoError as exc:
            source_errors.append(exc)

    result = InferResult(output, 0, width * (2 if options.side_by_side else 1), height, 0.0,
                         str(stylizer.plan.device), stylizer.compiled)
    started = time.perf_counter()
    audio = str(input_path) if info.has_audio else None
    time_base = VARIABLE_RATE_TIME_BASE if timed else None
    made_by = {"backend": stylizer.plan.backend, **(options.made_by or {})}
    with VideoWriter(output, info.fps, lossless=options.lossless, crf=options.crf, preset=options.preset,
                     audio_from=audio, audio_start=options.start, time_base=time_base,
                     made_by=made_by) as writer, \
            _progress_bar(total, progress) as bar, _blending(stylizer, device_blend), \
            contextlib.closing(stylizer.pairs(frames())) as pairs:
        def emit(item: tuple[np.ndarray, np.ndarray, float]) -> None:
            # In the encoder's thread: the blend needs the results in order, and its OpenCV
            # calls release the GIL, so it overlaps the network's next frame.
            frame_in, frame_out, seconds = item
            if device_blend is None:
                frame_out = stabilizer.apply(frame_out, motions.popleft())
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
                if on_frame is not None:
                    on_frame(result.frames, total)
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


def _device_blend(engine: FrameEngine, config: StabilizerConfig) -> TorchBlend | None:
    """A TorchBlend when the stabilizer is on and ``engine`` is a torch network on a device of
    DEVICE_BLEND_TYPES (its outputs are there already), else None: the encoding thread blends."""
    if config.strength == 0 or engine.plan.device_type not in DEVICE_BLEND_TYPES \
            or not hasattr(engine, "blend"):
        return None
    from vidstyle.infer.stabilize_torch import TorchBlend

    return TorchBlend(config)


@contextlib.contextmanager
def _blending(engine: FrameEngine, blend: TorchBlend | None) -> Iterator[None]:
    """``blend`` attached to ``engine`` for one job (an engine may serve several, one at a time)."""
    if blend is None:
        yield
        return
    engine.blend = blend
    try:
        yield
    finally:
        engine.blend = None


def _engine_for(net: nn.Module, engine: EngineConfig, job: JobSize) -> FrameEngine:
    from vidstyle.infer.engines import StylizerPool

    return StylizerPool(net, engine).get(job.work_pixels, (job.width, job.height))


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", disable=not enabled, dynamic_ncols=True, leave=False)
