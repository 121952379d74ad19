"""Video input: probe clips, stream their frames (writing is vidstyle.io.encode).

A clip is a video file (read with PyAV), an animated image (:mod:`vidstyle.io.animation`) or a
folder of numbered images (:mod:`vidstyle.io.framefolder`); random access is
:mod:`vidstyle.io.random_access`. Frames are numpy uint8 RGB (H, W, 3), upright: a
rotation stored in the file (display matrix) is applied, and sizes are (width, height) as displayed.
Every failure reaches the caller as ``VideoError`` (bad sizes and rates as ``ConfigError``) with the
path in its message; PyAV and OpenCV exceptions never escape.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from vidstyle.errors import ConfigError, VideoError
from vidstyle.io.animation import ANIMATED_SUFFIXES, frame_durations, is_animation, iter_animation_frames
from vidstyle.io.framefolder import FOLDER_FPS, IMAGE_EXTENSIONS, iter_images, numbered_images, read_image

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv", ".flv",
                              # read, not written: camcorders' and broadcasts' (AVCHD, HDV, DV, DVD),
                              # phones' of old, and others FFmpeg reads
                              ".ts", ".mts", ".m2ts", ".m2t", ".dv", ".vob", ".3gp", ".3g2", ".mxf",
                              ".ogv", ".asf"})
# AVCodecContext.field_order values of interlaced streams (TT, BB, TB, BT); 0 unknown, 1 progressive.
_INTERLACED_ORDERS = (2, 3, 4, 5)
# Interlaced frames become whole frames through FFmpeg's bwdif, one frame out per frame in (so frame
# counts and times are kept); frames not flagged interlaced pass through unchanged.
_DEINTERLACE = "mode=send_frame:parity=auto:deint=interlaced"
# Formats whose headers state the stream's duration, so a short stream means a cut file. MPEG
# program/transport streams are left out: their duration is only estimated from the bit rate.
_DURATION_IN_HEADER = ("matroska", "avi", "asf", "flv")


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a clip.

    num_frames: frames that decode (for .mp4/.mov the sample table's count, else video packets
    counted by demuxing). fps: frames per second (a frame folder gets FOLDER_FPS). width, height:
    pixels as displayed, after ``rotation``. duration: seconds. rotation: degrees counterclockwise
    (0, 90, 180, 270) the stored picture is turned for display; every reader here applies it.
    is_animation: an animated GIF, WebP, PNG or AVIF, read with Pillow. interlaced: a video file
    whose frames are stored as two fields (its stream's field order, or its first frame's flag);
    its readers here deinterlace them (:func:`iter_timed_frames`).
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    duration: float
    has_audio: bool
    rotation: int
    is_frame_folder: bool
    is_animation: bool = False
    interlaced: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, as displayed."""
        return self.width, self.height


# --- errors and opening -------------------------------------------------------------------------

def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


@contextlib.contextmanager
def _library_errors(path, action: str) -> Iterator[None]:
    """Re-raise PyAV and OS errors as VideoError: 'cannot <action> <path>: <reason>'."""
    try:
        yield
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"cannot {action} {path}: {_reason(error)}") from error


def _check_file(path) -> Path:
    file = Path(path)
    if not file.exists():
        raise VideoError(f"video not found: {path}")
    if not file.is_file():
        raise VideoError(f"{path} is not a video file")
    if file.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes), not a video")
    return file


def _open_input(path) -> av.container.InputContainer:
    file = _check_file(path)
    with _library_errors(path, "open video"):
        return av.open(str(file), metadata_errors="ignore")


def _video_stream(container, path) -> av.video.stream.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:  # cover art is no video
            return stream
    raise VideoError(f"{path} has no video stream")


def _probe_folder(folder: Path) -> VideoInfo:
    files = numbered_images(folder)
    if not files:
        raise VideoError(f"{folder} holds no numbered image frames (such as 00001.png)")
    height, width = read_image(files[0]).shape[:2]
    return VideoInfo(str(folder), len(files), FOLDER_FPS, width, height, len(files) / FOLDER_FPS,
                     has_audio=False, rotation=0, is_frame_folder=True)


def _probe_animation(path) -> VideoInfo:
    (width, height), durations = frame_durations(path)
    duration = float(durations.sum())
    return VideoInfo(str(path), len(durations), len(durations) / duration, width, height, duration,
                     has_audio=False, rotation=0, is_frame_folder=False, is_animation=True)


# --- probing files ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Scan:
    packets: int          # video packets holding a frame
    first: float | None   # seconds: earliest packet time
    end: float | None     # seconds: latest packet time plus its duration
    rotation: int         # of the first decoded frame, degrees counterclockwise
    interlaced: bool      # the first decoded frame is flagged interlaced


def _scan(container, stream, path, count: bool) -> _Scan:
    """Demux the video stream (no decoding beyond the first frame, for its rotation).

    Without ``count`` it stops at the first frame. A demux or decode error ends the count there,
    which is what a reader will meet too.
    """
    packets, first, end, rotation, interlaced = 0, None, None, None, False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            packets += 1
            if packet.pts is not None:
                start = float(packet.pts * packet.time_base)
                first = start if first is None else min(first, start)
                stop = start + float((packet.duration or 0) * packet.time_base)
                end = stop if end is None else max(end, stop)
            if rotation is None:
                frames = packet.decode()
                rotation = _quarter_turns(frames[0].rotation) * 90 if frames else None
                interlaced = bool(frames and frames[0].interlaced_frame)
                if rotation is not None and not count:
                    break
    except av.FFmpegError:
        pass
    if rotation is None:
        rotation = _first_rotation_after_flush(stream)
    if rotation is None:
        raise VideoError(f"{path}: no video frame could be decoded")
    return _Scan(packets, first, end, rotation, interlaced)


def _first_rotation_after_flush(stream) -> int | None:
    """Rotation of the first frame that only comes out when the decoder is drained (short clips)."""
    try:
        frames = stream.codec_context.decode(None)
    except av.FFmpegError:
        return None
    return _quarter_turns(frames[0].rotation) * 90 if frames else None


def _quarter_turns(degrees: float) -> int:
    return int(round(degrees / 90.0)) % 4


def _declared_duration(container, stream) -> float | None:
    """Seconds of video the header promises, where the format's header can be believed."""
    if not container.format.name.startswith(_DURATION_IN_HEADER):
        return None
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")  # matroska: "HH:MM:SS.nnnnnnnnn"
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", tag)
    if match:
        return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
    if container.duration and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _probe_file(path) -> tuple[VideoInfo, int]:
    """VideoInfo of a video file, and the frames it should hold (more than num_frames if cut)."""
    with _open_input(path) as container, _library_errors(path, "read video"):
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        stream_seconds = float(stream.duration * stream.time_base) if stream.duration else None
        # mp4/mov sample tables count frames exactly, unless an edit list hides some of them
        # (a stream-copied cut), which shows as a count the duration does not account for.
        trusted = (container.format.name.startswith("mov") and stream.frames > 0 and rate
                   and stream_seconds and abs(stream.frames - stream_seconds * rate) <= 1)
        scan = _scan(container, stream, path, count=not trusted)
        if trusted:
            frames, fps, duration = stream.frames, float(rate), stream_seconds
        else:
            frames = scan.packets
            span = scan.end - scan.first if scan.end is not None else 0.0
            fps = float(rate) if rate else (frames / span if span > 0 else FOLDER_FPS)
            # A stream far sparser or denser than its nominal rate (some AVIs): spread the frames
            # over the time they really cover, so that writing them back keeps the clip's length.
            if frames > 1 and span > 0 and abs(frames - span * fps) > max(2.0, 0.1 * frames):
                fps = frames / span
            duration = span if span > 0 else frames / fps
        expected = frames
        declared = None if trusted else _declared_duration(container, stream)
        if declared and declared - duration > max(3.0 / fps, 0.05 * declared):
            expected = max(frames, round(declared * fps))
        width, height = stream.codec_context.width, stream.codec_context.height
        if scan.rotation in (90, 270):
            width, height = height, width
        interlaced = scan.interlaced or (stream.codec_context.field_order or 0) in _INTERLACED_ORDERS
        info = VideoInfo(str(path), frames, fps, width, height, duration,
                         has_audio=bool(container.streams.audio), rotation=scan.rotation,
                         is_frame_folder=False, interlaced=interlaced)
    return info, expected


@functools.lru_cache(maxsize=64)
def _probe_cached(path: str, _mtime_ns: int, _size: int) -> tuple[VideoInfo, int]:
    if is_animation(path):
        info = _probe_animation(path)
        return info, info.num_frames
    return _probe_file(path)


def _probe_with_expected(path) -> tuple[VideoInfo, int]:
    if Path(path).is_dir():
        info = _probe_folder(Path(path))
        return info, info.num_frames
    stat = _check_file(path).stat()
    return _probe_cached(str(path), stat.st_mtime_ns, stat.st_size)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, rate, size, duration, audio and rotation of a video file, animated image or
    frame folder.

    For .mp4/.mov files the count comes from the container (free); for other formats the video
    packets are counted by demuxing, which reads the file but decodes nothing. Results are cached
    per (path, modification time, size). Raises VideoError for anything that is not a readable clip.
    """
    return _probe_with_expected(path)[0]


def variable_rate(path: str | os.PathLike) -> bool:
    """Whether a clip's frames stray from even spacing: some frame's time is more than a quarter of
    a frame away from t / fps (phones and screen recorders write such files).

    Reads the packet times by demuxing (no decoding), an animation's frame durations. A frame
    folder is evenly spaced.
    """
    info = probe(path)
    if info.is_frame_folder or info.num_frames < 2:
        return False
    if info.is_animation:
        _, durations = frame_durations(path)
        times = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        return bool(np.max(np.abs(times - np.arange(len(times)) / info.fps)) > 0.25 / info.fps)
    with _open_input(path) as container, _library_errors(path, "read video"):
        stream = _video_stream(container, path)
        stamps = []
        with contextlib.suppress(av.FFmpegError):  # a cut file: the frames before the cut count
            stamps = [packet.pts for packet in container.demux(stream)
                      if packet.size and packet.pts is not None]
        times = np.sort(np.asarray(stamps, np.float64)) * float(stream.time_base)
    if len(times) < 2:
        return False
    even = np.arange(len(times)) / info.fps
    return bool(np.max(np.abs(times - times[0] - even)) > 0.25 / info.fps)


def is_clip(path: str | os.PathLike) -> bool:
    """True for a path with a video extension (VIDEO_EXTENSIONS, whether or not it exists yet), for
    an animated image (GIF, WebP, PNG or AVIF of more than one frame) and for a frame folder.
    Hidden names (".x.mp4") are never clips.

    A frame folder holds no video file, and its longest numbered sequence of images (at least 2) is
    at least half of its images: a folder of videos beside a few numbered pictures, or of photos that
    happen to carry numbers, is a folder to search, not a clip.
    """
    path = Path(path)
    if path.name.startswith("."):
        return False
    if not path.is_dir():
        suffix = path.suffix.lower()
        return suffix in VIDEO_EXTENSIONS or (suffix in ANIMATED_SUFFIXES and is_animation(path))
    try:
        names = os.listdir(path)
        frames = numbered_images(path)
    except (OSError, VideoError):
        return False
    suffixes = [os.path.splitext(name)[1].lower() for name in names if not name.startswith(".")]
    if any(suffix in VIDEO_EXTENSIONS for suffix in suffixes):
        return False
    images = sum(suffix in IMAGE_EXTENSIONS for suffix in suffixes)
    return len(frames) >= 2 and 2 * len(frames) >= images


# --- reading ------------------------------------------------------------------------------------

def check_size(size) -> tuple[int, int] | None:
    """``size`` as (width, height) positive ints, or None; ConfigError for anything else."""
    if size is None:
        return None
    if isinstance(size, (str, bytes)):
        raise ConfigError(f"size must be (width, height), got {size!r}")
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (width, height), got {size!r}") from None
    if width < 1 or height < 1:
        raise ConfigError(f"size must be positive, got {width}x{height}")
    return width, height


def upright_resized(frame: np.ndarray, rotation: int, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 (H, W, 3) as displayed: turned by ``rotation`` degrees counterclockwise, then resized."""
    if rotation:
        frame = np.rot90(frame, rotation // 90)
    if size is not None and size != (frame.shape[1], frame.shape[0]):
        shrinking = size[0] <= frame.shape[1] and size[1] <= frame.shape[0]
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(frame)


def _frame_window(info: VideoInfo, expected: int, max_frames, start, duration) -> tuple[int, int]:
    """Frame indices [first, stop) for a time window in seconds, capped at max_frames.

    With no duration the window runs to the frames the file should hold (``expected``), so that
    reading a cut file reaches its cut and reports it.
    """
    if not (math.isfinite(start) and start >= 0) or (
            duration is not None and not (math.isfinite(duration) and duration > 0)):
        raise ConfigError(f"start must be >= 0 and duration > 0 seconds, both finite, "
                          f"got {start} and {duration}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be at least 1, got {max_frames}")
    if start * info.fps >= info.num_frames:     # before any round(): 1e308 s is no frame number
        raise VideoError(f"start {start:g} s is past the end of {info.path} ({info.duration:.3f} s)")
    first = round(start * info.fps)
    stop = expected if duration is None else round(min((start + duration) * info.fps, expected))
    if max_frames is not None:
        stop = min(stop, first + max_frames)
    if first >= info.num_frames:
        raise VideoError(f"start {start:g} s is past the end of {info.path} ({info.duration:.3f} s)")
    return first, max(stop, first + 1)


def iter_frames(path: str | os.PathLike, size: tuple[int, int] | None = None,
                max_frames: int | None = None, start: float = 0.0,
                duration: float | None = None) -> Iterator[np.ndarray]:
    """Stream a clip's frames in order: uint8 RGB (H, W, 3), upright, resized to size=(width, height).

    start and duration are seconds; the frames yielded are those with index t in
    [round(start * fps), round((start + duration) * fps)), at most ``max_frames`` of them.
    Shrinking uses area interpolation, enlarging bilinear. The clip is probed (and missing or
    unreadable input raises) at the call; decoding happens as frames are taken. A truncated or
    corrupt stream yields the frames that decode, then raises VideoError("... truncated: decoded N
    frames ...").
    """
    return (frame for _, frame in iter_timed_frames(path, size, max_frames, start, duration))


def iter_timed_frames(path: str | os.PathLike, size: tuple[int, int] | None = None,
                      max_frames: int | None = None, start: float = 0.0,
                      duration: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Like :func:`iter_frames`, with each frame's presentation time: (seconds, frame) pairs.

    Seconds are the times stored in the file, counted from the stream's start time (the first
    frame is at 0 unless the coder delays it, as AVI does), so a variable frame rate shows; frame
    t of a folder is at t / FOLDER_FPS, an animation's frame where the durations before it end.
    """
    size = check_size(size)
    info, expected = _probe_with_expected(path)
    first, stop = _frame_window(info, expected, max_frames, start, duration)
    if info.is_frame_folder:
        return _iter_folder(Path(path), size, first, stop)
    if info.is_animation:
        return _iter_animation(path, size, start, duration, max_frames)
    return _iter_file(path, info, expected, size, first, stop)


def _iter_folder(folder: Path, size, first: int, stop: int) -> Iterator[tuple[float, np.ndarray]]:
    frames = iter_images(folder, first, stop, same_size=size is None)
    for index, frame in enumerate(frames, start=first):
        yield index / FOLDER_FPS, upright_resized(frame, 0, size)


def _iter_animation(path, size, start: float, duration: float | None, max_frames: int | None
                    ) -> Iterator[tuple[float, np.ndarray]]:
    """An animation's frames that start in [start, start + duration), by their own times (its
    frames may last unevenly), at most ``max_frames`` of them."""
    _, durations = frame_durations(path)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    end = math.inf if duration is None else start + duration
    chosen = np.flatnonzero((starts >= start - 1e-9) & (starts < end - 1e-9))[:max_frames]
    if len(chosen) == 0:    # a window between two frames' starts: the frame showing then
        chosen = np.array([max(int(np.searchsorted(starts, start, side="right")) - 1, 0)])
    frames = iter_animation_frames(path, int(chosen[0]), int(chosen[-1]) + 1)
    for index, frame in zip(range(int(chosen[0]), int(chosen[-1]) + 1), frames, strict=False):
        yield float(starts[index]), upright_resized(frame, 0, size)


def _decoded_frames(container, stream, deinterlace: bool) -> Iterator[av.VideoFrame]:
    """The stream's frames in order; with ``deinterlace`` each interlaced one made whole by bwdif
    (_DEINTERLACE). A decoding error is raised after every frame before it, held ones included."""
    graph = _deinterlacer(stream) if deinterlace else None
    if graph is None:
        for packet in container.demux(stream):
            yield from packet.decode()
        return
    failure = None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                yield from _through(graph, frame)
    except av.FFmpegError as error:
        failure = error
    yield from _through(graph, None)    # the frame bwdif holds until it sees the next one
    if failure is not None:
        raise failure


def _deinterlacer(stream) -> av.filter.Graph | None:
    """A bwdif graph for the stream's frames; None where FFmpeg cannot build one (frames too small)."""
    try:
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        bwdif = graph.add("bwdif", _DEINTERLACE)
        sink = graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(sink)
        graph.configure()
    except (av.FFmpegError, ValueError):
        return None
    return graph


def _through(graph: av.filter.Graph, frame: av.VideoFrame | None) -> Iterator[av.VideoFrame]:
    """Push one frame (None: the end) into ``graph`` and yield what comes out."""
    graph.vpush(frame)
    while True:
        try:
            yield graph.vpull()
        except (av.BlockingIOError, av.EOFError):
            return


class _LandedLate(Exception):
    """A seek from which the first frame decoded is past the one asked for, or none decodes at all:
    formats without an index (MPEG transport streams) land on a frame that needs an earlier one."""


def _iter_file(path, info: VideoInfo, expected: int, size, first: int, stop: int
               ) -> Iterator[tuple[float, np.ndarray]]:
    if first > 0:
        try:
            yield from _iter_from(path, info, expected, size, first, stop, seek=True)
            return
        except _LandedLate:
            pass    # nothing was yielded: decode from the first frame instead
    yield from _iter_from(path, info, expected, size, first, stop, seek=False)


def _iter_from(path, info: VideoInfo, expected: int, size, first: int, stop: int, seek: bool
               ) -> Iterator[tuple[float, np.ndarray]]:
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        if seek:
            with _library_errors(path, "seek in"):
                target = (stream.start_time or 0) + int(first / info.fps / stream.time_base)
                container.seek(target, stream=stream)
        index, failure = (None if seek else 0), None
        try:
            for frame in _decoded_frames(container, stream, info.interlaced):
                seconds = frame.time - origin if frame.time is not None else None
                if index is None:  # after a seek, place the first frame by its time
                    index = round((seconds or 0.0) * info.fps)
                    if index > first:
                        raise _LandedLate
                if index >= first:
                    yield (index / info.fps if seconds is None else seconds,
                           upright_resized(frame.to_ndarray(format="rgb24"), info.rotation, size))
                index += 1
                if index >= stop:
                    return
        except av.FFmpegError as error:
            failure = error
        if index is None:   # after a seek, nothing decoded: the reading from the start tells why
            raise _LandedLate
        if failure is not None or index < min(stop, expected):
            reason = f" ({_reason(failure)})" if failure is not None else ""
            raise VideoError(f"{path} is truncated: decoded {index} frames of {expected}{reason}")
    finally:
        container.close()
