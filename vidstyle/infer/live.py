"""Live stylization: a camera, stream or file in; a window, a file or raw frames on stdout out.

A reader thread captures frames (OpenCV) into a one-frame slot; the network always takes the newest
frame, so when it is slower than the source the frames it had no time for are dropped and the
picture stays live instead of falling behind. A camera or stream paces itself; a file is read at its
own frame rate, as if it were a camera. The file and stdout outputs keep real time: a dropped frame
repeats the last stylized one, so N source frames give N frames out.

    with VideoWriter("out.mp4", fps) as writer:
        stats = run_live(stylizer, FrameSource("0"), [writer], window=None)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from vidstyle.errors import ConfigError, VideoError
from vidstyle.infer.stylize import Stylizer
from vidstyle.infer.window import draw_rate
from vidstyle.io.video import probe

DEFAULT_FPS = 30.0      # for cameras and streams that do not say


@dataclass
class LiveStats:
    """frames_in: source frames consumed; stylized: frames through the network; dropped: the rest;
    seconds: wall time; written: frames sent to the file/stdout outputs."""

    frames_in: int = 0
    stylized: int = 0
    written: int = 0
    seconds: float = 0.0

    @property
    def dropped(self) -> int:
        return self.frames_in - self.stylized

    @property
    def rate(self) -> float:
        """Stylized frames per second."""
        return self.stylized / self.seconds if self.seconds > 0 else 0.0


def source_kind(spec: str) -> str:
    """"camera" for an index (0, 1, ...), "stream" for a URL (rtsp://, http://, ...), else "file"."""
    if spec.isdigit():
        return "camera"
    return "stream" if "://" in spec else "file"


def _open_capture(spec: str, kind: str) -> cv2.VideoCapture:
    """cv2.VideoCapture with OpenCV's own warnings held back: a camera that is not there makes it
    print several lines per backend tried, and our one-line error says it better. So would the
    FFmpeg inside OpenCV for a stream that refuses the connection (a level the user sets is kept)."""
    from cv2.utils import logging as cv_logging

    try:
        spec.encode("utf-8")
    except UnicodeEncodeError:  # OpenCV takes names as UTF-8 and crashes on other bytes
        raise VideoError(f"cannot open {spec}: OpenCV opens only names that are valid UTF-8; "
                         "rename it") from None
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")     # AV_LOG_QUIET
    level = cv_logging.getLogLevel()
    cv_logging.setLogLevel(cv_logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(int(spec) if kind == "camera" else spec)
    finally:
        cv_logging.setLogLevel(level)


class FrameSource:
    """Frames from ``spec`` (camera index, URL or file) in a background thread, newest first.

    size: (width, height) to resize to, or None. max_frames: stop after that many source frames.
    pace: wait 1/fps between frames (default: for files only; cameras and streams pace themselves).
    drop: keep only the newest frame, dropping those the consumer had no time for (live); False,
    for files only: hand over every frame, reading the next only when the last is taken, unpaced,
    so that a recording holds every frame stylized.
    """

    def __init__(self, spec: str, size: tuple[int, int] | None = None, max_frames: int | None = None,
                 pace: bool | None = None, drop: bool = True):
        self.spec, self.kind, self.size, self.max_frames = spec, source_kind(spec), size, max_frames
        if not drop and self.kind != "file":
            raise ConfigError("--no-drop is for file sources: a camera or stream does not wait")
        self.drop = drop
        info = probe(spec) if self.kind == "file" else None   # missing, empty, not a video: one line
        self._capture = _open_capture(spec, self.kind)
        if not self._capture.isOpened():
            what = {"camera": f"camera {spec}", "stream": f"stream {spec}", "file": spec}[self.kind]
            raise VideoError(f"cannot open {what}" + (" (is a camera connected and free?)"
                                                      if self.kind == "camera" else ""))
        if info is not None:
            self.fps, native = info.fps, info.size
        else:
            rate = self._capture.get(cv2.CAP_PROP_FPS)
            self.fps = rate if 0 < rate <= 240 else DEFAULT_FPS
            native = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                      int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.frame_size: tuple[int, int] = size or native     # (width, height) of the frames given
        self.pace = (self.kind == "file" and drop) if pace is None else pace
        self._cond = threading.Condition()
        self._latest: tuple[int, np.ndarray] | None = None
        self._taken = -1
        self._count = 0
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="vidstyle-capture", daemon=True)

    @property
    def count(self) -> int:
        """Source frames read so far."""
        return self._count

    def __enter__(self) -> FrameSource:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._capture.release()

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.size is not None and (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        return rgb

    def _read(self) -> None:
        started = time.monotonic()
        index = 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or index < self.max_frames):
                ok, bgr = self._capture.read()
                if not ok:
                    break
                if self.pace:
                    self._stop.wait(max(0.0, started + index / self.fps - time.monotonic()))
                frame = self._convert(bgr)
                with self._cond:
                    while not self.drop and not self._stop.is_set() and self._latest is not None \
                            and self._latest[0] != self._taken:
                        self._cond.wait(timeout=0.5)
                    self._latest, self._count = (index, frame), index + 1
                    self._cond.notify_all()
                index += 1
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def take(self) -> tuple[int, np.ndarray] | None:
        """The newest frame not taken yet as (index, uint8 RGB (H, W, 3)); None when the source
        has ended and every frame is taken or dropped."""
        with self._cond:
            while not self._done and (self._latest is None or self._latest[0] == self._taken):
                self._cond.wait(timeout=0.5)
            if self._latest is None or self._latest[0] == self._taken:
                return None
            self._taken = self._latest[0]
            self._cond.notify_all()
            return self._latest


class Sink(Protocol):
    """Where stylized frames go: a VideoWriter (vidstyle.io.video) or a RawSink."""

    def write(self, rgb: np.ndarray) -> None: ...


class RawSink:
    """Raw rgb24 frames on a binary stream (stdout), for ``ffmpeg -f rawvideo``; stops quietly
    when the reader goes away (BrokenPipeError sets ``closed``)."""

    def __init__(self, stream=None):
        self._stream = stream if stream is not None else sys.stdout.buffer
        self.closed = False

    def write(self, rgb: np.ndarray) -> None:
        if self.closed:
            return
        try:
            self._stream.write(np.ascontiguousarray(rgb).tobytes())
        except BrokenPipeError:
            self.closed = True

    def flush(self) -> None:
        try:
            if not self.closed:
                self._stream.flush()
        except BrokenPipeError:
            self.closed = True


def _emit(sinks: list[Sink], frame: np.ndarray, times: int, stats: LiveStats) -> None:
    for _ in range(times if sinks else 0):
        for sink in sinks:
            sink.write(frame)
        stats.written += 1


def run_live(stylizer: Stylizer, source: FrameSource, sinks: list[Sink], window=None,
             post_process: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> LiveStats:
    """Stylize ``source`` until it ends, the window is closed (q, Esc) or Ctrl-C.

    Every sink gets one frame per source frame (the last stylized one repeated for dropped frames);
    the window gets each stylized frame once, with the rate of the last second drawn on it.
    """
    stats = LiveStats()
    previous: tuple[int, np.ndarray] | None = None
    recent: list[float] = []
    started = time.perf_counter()
    try:
        with source:
            while (got := source.take()) is not None:
                index, frame = got
                out = stylizer(frame[None])[0]
                if post_process is not None:
                    out = post_process(frame, out)
                stats.stylized += 1
                # Slots of dropped frames hold the frame shown then; before the first, the first.
                gap = index - (previous[0] if previous is not None else -1) - 1
                _emit(sinks, previous[1] if previous is not None else out, gap, stats)
                _emit(sinks, out, 1, stats)
                previous = (index, out)
                now = time.perf_counter()
                recent = [t for t in recent if now - t < 1.0] + [now]
                rate = len(recent) / min(1.0, now - started)
                if window is not None and not window.show(draw_rate(out, rate)):
                    break
                if any(getattr(sink, "closed", False) for sink in sinks):
                    break
            stats.frames_in = source.count
        if previous is not None and sinks and stats.written < stats.frames_in:
            _emit(sinks, previous[1], stats.frames_in - stats.written, stats)
        if stats.stylized == 0:
            raise VideoError(f"no frames could be read from {source.spec}")
    finally:
        stats.seconds = time.perf_counter() - started
        if window is not None:
            window.close()
    return stats


def format_stats(stats: LiveStats, source: FrameSource) -> str:
    return (f"live: {stats.frames_in} frames from {source.spec} ({source.fps:.1f} frames/s), "
            f"{stats.stylized} stylized at {stats.rate:.1f} frames/s, {stats.dropped} dropped to "
            f"stay live, {stats.written} written, {stats.seconds:.1f} s")
