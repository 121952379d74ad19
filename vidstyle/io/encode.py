"""Writing video: encode uint8 RGB frames to a file that appears only when complete, with audio.

The reading side (probe, decode) is :mod:`vidstyle.io.video`; this module uses it only to copy the
source's audio. Encoding: H.264 crf 18 yuv420p by default (the preset infer uses, and why:
:class:`vidstyle.infer.inferconfig.InferOptions`); VP9 for .webm, with Opus audio. Lossless: ffv1
for .mkv/.avi, libx264rgb qp 0 for .mp4/.mov; both are exact, and ffv1 is chosen wherever the
container takes it because its files are smaller and faster to write. Odd width or height: 4:2:0
and 4:2:2 cannot hold them, so such frames are encoded yuv444p (High 4:4:4 profile, which in our
measurement cost no more bytes or time than padding to even) and keep their exact size. Some
players (browsers, QuickTime) do not play 4:4:4; give an even size where that matters.

Frame times: by default frame t is stamped t / fps. A writer given a ``time_base`` stamps each frame
with the time passed to :meth:`VideoWriter.write` instead, which keeps a variable frame rate; AVI
cannot hold one (its frames are evenly spaced by design), so there the times are ignored.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidstyle.errors import ConfigError, VideoError
from vidstyle.fsutil import unique_temp
from vidstyle.io.video import _library_errors, _open_input, _reason

# Containers the writer fills: H.264 in all but .webm, which takes VP9 (WEBM_OPTIONS); lossless
# output needs one of LOSSLESS_EXTENSIONS.
OUTPUT_EXTENSIONS = (".avi", ".flv", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv")
LOSSLESS_EXTENSIONS = (".avi", ".mkv", ".mov", ".mp4")
# VP9 for .webm: libvpx's realtime speed 8 with row threads encodes a 640x360 frame faster than x264
# veryfast does here; at crf + WEBM_CRF_OFFSET on VP9's 0..63 scale two stylized clips kept at least
# x264's PSNR at infer's crf 18, in 0.90-1.34x the bytes (benchmarks/results/default_cpu/output_codecs.md).
WEBM_OPTIONS = {"b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
WEBM_CRF_OFFSET = 8
# Formats whose frames are evenly spaced by design: no per-frame times.
_CONSTANT_RATE_SUFFIXES = (".avi",)


def check_output_path(path: str | os.PathLike, lossless: bool = False,
                      source: str | os.PathLike | None = None) -> Path:
    """Refuse, before any work, an output the writer could not finish or that would destroy data.

    ``path`` must name a file (not a folder) with a video extension the encoder can fill, in a
    folder that exists and can be written, and neither it nor its ``partial_path`` may be the
    ``source`` file, under any name (links included). Raises ConfigError or VideoError.
    """
    given, path = os.fspath(path), Path(path)
    if path.is_dir() or given.endswith(("/", os.sep)):
        raise VideoError(f"output {path} is a folder; give a file name such as {path / 'out.mp4'}")
    if not path.parent.is_dir():
        raise VideoError(f"output folder does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise VideoError(f"cannot write to the output folder {path.parent}: permission denied "
                         "(choose another with -o)")
    allowed = LOSSLESS_EXTENSIONS if lossless else OUTPUT_EXTENSIONS
    if path.suffix.lower() not in allowed:
        what = "--lossless output" if lossless else "output"
        raise ConfigError(f"{what} {path.name} needs a video extension: {', '.join(allowed)}")
    for target in (path, partial_path(path)):
        if source is not None and _same_file(source, target):
            raise VideoError(f"output {target} would overwrite the input {source}")
    return path


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def partial_path(path: str | os.PathLike) -> Path:
    """``NAME.partial.EXT`` for ``NAME.EXT``: where the part of a job that could be done is kept."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


# --- codec choice ------------------------------------------------------------------------------

def _as_rate(fps) -> Fraction:
    """fps as an exact fraction: floats such as 29.97002997 become 30000/1001."""
    try:
        rate = Fraction(fps).limit_denominator(100000)
    except (TypeError, ValueError):
        raise ConfigError(f"fps must be a number, got {fps!r}") from None
    if rate <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    return rate


def _pixel_format_for(pix_fmt: str, width: int, height: int) -> str:
    """pix_fmt, or yuv444p when its chroma subsampling cannot hold an odd width or height."""
    layout = av.VideoFormat(pix_fmt)
    if (width % 2 and layout.chroma_width(2) < 2) or (height % 2 and layout.chroma_height(2) < 2):
        return "yuv444p"
    return pix_fmt


def _encoding(suffix: str, width: int, height: int, lossless: bool, crf: int, preset: str,
              codec: str, pix_fmt: str) -> tuple[str, str, dict[str, str]]:
    """(codec, pixel format, encoder options) for the output file."""
    if lossless:
        if suffix.lower() in (".mkv", ".avi"):
            return "ffv1", "bgr0", {}
        return "libx264rgb", "rgb24", {"qp": "0", "preset": preset}
    if suffix.lower() == ".webm" and codec == "libx264":
        return "libvpx-vp9", _pixel_format_for(pix_fmt, width, height), {
            "crf": str(min(crf + WEBM_CRF_OFFSET, 63)), **WEBM_OPTIONS}
    options = {"crf": str(crf), "preset": preset} if codec in ("libx264", "libx265") else {}
    return codec, _pixel_format_for(pix_fmt, width, height), options


# Where a stylized file says what made it: the container's comment tag, "vidstyle {json}".
MADE_BY_KEY = "comment"
MADE_BY_PREFIX = "vidstyle "


def read_made_by(path: str | os.PathLike) -> dict[str, str] | None:
    """The ``made_by`` fields a VideoWriter stored in ``path``, or None (another program's file, a
    frame folder, or unreadable)."""
    if Path(path).is_dir():
        return None
    try:
        with av.open(str(path)) as container:    # Matroska gives its tags' names in capitals
            tags = {key.lower(): value for key, value in container.metadata.items()}
        text = tags.get(MADE_BY_KEY, "")
    except (av.FFmpegError, OSError, ValueError):
        return None
    if not text.startswith(MADE_BY_PREFIX):
        return None
    try:
        fields = json.loads(text[len(MADE_BY_PREFIX):])
    except json.JSONDecodeError:
        return None
    return {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else None


class VideoWriter:
    """Encode uint8 RGB frames (H, W, 3) to ``path``; the file appears there only when complete.

        with VideoWriter("out.mp4", fps=info.fps, audio_from="in.mp4") as writer:
            for frame in frames:
                writer.write(frame)

    Written to a fresh hidden temporary beside ``path`` (``.out.XXXXXXXX.tmp.mp4``) and renamed on
    a clean exit, to :meth:`keep_as`'s name if one was given; an exception inside the ``with``, or
    no frames at all, leaves nothing under either name. fps (float or Fraction) is kept exactly:
    frame t is stamped t / fps in a 1/fps time base. With ``time_base`` (a Fraction of a second)
    each frame is stamped with the seconds given to :meth:`write` instead (a variable rate; fps is
    then the average, for the encoder's rate control). Defaults: H.264 (libx264) crf 18 yuv420p, MP4
    index at the front, VP9 in .webm (WEBM_OPTIONS); odd sizes switch to yuv444p (see the module
    notes). ``lossless=True`` stores the exact pixels: ffv1 in .mkv/.avi, libx264rgb qp 0 elsewhere.
    ``crf`` applies to libx264/libx265 (and VP9, offset), ``preset`` to libx264/libx265.
    ``audio_from``: copy that file's audio streams, from ``audio_start`` seconds on and as long as
    the video, without re-encoding when the output format takes the codec (else re-encoded to AAC,
    Opus in .webm). A source with no audio adds none. ``made_by`` (text fields) goes into the
    container's metadata; :func:`read_made_by` reads it.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, *, lossless: bool = False,
                 crf: int = 18, preset: str = "medium", audio_from: str | os.PathLike | None = None,
                 audio_start: float = 0.0, codec: str = "libx264", pix_fmt: str = "yuv420p",
                 time_base: Fraction | None = None, made_by: Mapping[str, str] | None = None):
        self.path = self.destination = Path(path)
        self.rate = _as_rate(fps)
        self.frames_written = 0
        self._settings = dict(lossless=lossless, crf=crf, preset=preset, codec=codec, pix_fmt=pix_fmt)
        self._audio_from, self._audio_start = audio_from, audio_start
        timed = time_base is not None and self.path.suffix.lower() not in _CONSTANT_RATE_SUFFIXES
        self._time_base = Fraction(time_base) if timed else None
        self._last_pts, self._end = -1, 0.0  # end: seconds of video written so far
        self._tmp = self._out = self._video = self._audio = self._shape = None
        self._made_by = dict(made_by) if made_by else None

    def __enter__(self) -> VideoWriter:
        with _library_errors(self.path, "write"):
            self._tmp = unique_temp(self.path)
        return self

    def keep_as(self, path: str | os.PathLike) -> None:
        """Rename the finished file to ``path`` instead of the name it was opened with."""
        self.destination = Path(path)

    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Append one uint8 RGB frame (H, W, 3); every frame must have the first one's size.

        ``time``: seconds from the start of the output, used when the writer has a time_base
        (frames whose times do not increase are moved one tick after the previous frame).
        """
        if self._tmp is None:
            raise VideoError("VideoWriter.write needs an open writer: use it in a `with` block")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise VideoError(f"frames for {self.path} must be uint8 RGB (H, W, 3), "
                             f"got {frame.dtype} {frame.shape}")
        if self._shape is None:
            self._start(width=frame.shape[1], height=frame.shape[0])
        elif frame.shape != self._shape:
            raise VideoError(f"frame {self.frames_written} for {self.path} is {frame.shape[1]}x"
                             f"{frame.shape[0]}, the first was {self._shape[1]}x{self._shape[0]}")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        picture.pts = self._next_pts(time)
        with _library_errors(self.path, "write"):
            if self._audio is not None:
                self._audio.copy_until(self._end)
            self._out.mux(self._video.encode(picture))
            self.frames_written += 1

    def _next_pts(self, time: float | None) -> int:
        """The frame's stamp in the stream's time base; moves ``_end`` to the frame's end."""
        if self._time_base is None:
            pts = self.frames_written
            self._end = float((pts + 1) / self.rate)
        else:
            seconds = self._end if time is None else max(time, 0.0)
            pts = max(round(Fraction(seconds) / self._time_base), self._last_pts + 1)
            self._end = float(pts * self._time_base + 1 / self.rate)
        self._last_pts = pts
        return pts

    def _start(self, width: int, height: int) -> None:
        codec, pix_fmt, options = _encoding(self.path.suffix, width, height, **self._settings)
        mov_family = self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
        faststart = {"movflags": "+faststart"} if mov_family else {}  # index first: plays while loading
        try:
            self._out = av.open(str(self._tmp), "w", container_options=faststart)
            if self._made_by:
                self._out.metadata[MADE_BY_KEY] = MADE_BY_PREFIX + json.dumps(self._made_by, sort_keys=True)
            self._video = self._out.add_stream(codec, rate=self.rate, options=options)
            self._video.width, self._video.height, self._video.pix_fmt = width, height, pix_fmt
            if self._time_base is not None:
                self._video.codec_context.time_base = self._video.time_base = self._time_base
            if not av.VideoFormat(pix_fmt).is_rgb:
                # rgb24 -> YUV goes through swscale's BT.601 limited-range matrix; saying so keeps
                # players from assuming BT.709 for HD sizes and shifting the colours.
                self._video.codec_context.colorspace = 6   # AVCOL_SPC_SMPTE170M
                self._video.codec_context.color_range = 1  # AVCOL_RANGE_MPEG
        except (av.FFmpegError, OSError, ValueError) as error:
            raise VideoError(f"cannot write {self.path} with {codec}/{pix_fmt}: "
                             f"{_reason(error)}") from error
        self._shape = (height, width, 3)
        if self._audio_from is not None:
            self._audio = _AudioCopy(self._audio_from, self._out, self._audio_start)

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise VideoError(f"no frames were written to {self.path}")
        with _library_errors(self.path, "write"):
            self._out.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.finish(self._end)
            self._out.close()
            os.replace(self._tmp, self.destination)

    def _close_quietly(self) -> None:
        for closable in (self._audio, self._out):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()

    def __exit__(self, exc_type, exc, tb) -> bool:
        tmp = self._tmp
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            self._close_quietly()
            tmp.unlink(missing_ok=True)
            raise
        finally:
            self._tmp = None
        if exc_type is not None:
            self._close_quietly()
            tmp.unlink(missing_ok=True)
        return False


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float | Fraction,
                **kwargs) -> int:
    """Write uint8 RGB frames (H, W, 3) with VideoWriter(path, fps, **kwargs); the number written."""
    with VideoWriter(path, fps, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written


# --- audio --------------------------------------------------------------------------------------

def _takes_copy(format_name: str, stream) -> bool:
    """Whether a ``format_name`` file can hold ``stream`` as is: write a header in memory to see.

    Asking avformat_query_codec is not enough: it says yes to Opus in .mov, whose header then fails.
    """
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False


def _audio_rate(codec: str, rate: int | None) -> int:
    """``rate`` where the encoder takes it, else the lowest it takes above (Opus: 48 kHz for 44.1)."""
    rates = sorted(av.codec.Codec(codec, "w").audio_rates or ())
    if not rate:
        return 48000 if not rates or 48000 in rates else rates[-1]
    if not rates or rate in rates:
        return rate
    return next((r for r in rates if r >= rate), rates[-1])


def _video_origin(container) -> float:
    """Seconds at which the source's video begins: output time 0, where the readers count a frame's
    time from (vidstyle.io.video). Sound that begins earlier or later keeps its distance from it."""
    for stream in container.streams.video:
        if stream.start_time is not None and not stream.disposition & av.stream.Disposition.attached_pic:
            return float(stream.start_time * stream.time_base)
    return (container.start_time or 0) / av.time_base


class _AudioCopy:
    """Audio streams of ``source`` carried into ``out`` in step with the video being written.

    Keeps packets inside [start, start + video duration) of the source's video time (seconds from
    its first frame), shifted so that the video's time 0 is the output's.
    Packets are copied when the output format takes their codec, else decoded and re-encoded.
    """

    def __init__(self, source, out, start: float):
        self._source = _open_input(source)
        streams = list(self._source.streams.audio)
        target = next((codec for codec in ("aac", "libopus") if codec in out.supported_codecs),
                      out.default_audio_codec)
        self._outputs = {}
        with _library_errors(source, "take audio from"):
            for stream in streams:
                if _takes_copy(out.format.name, stream):
                    self._outputs[stream.index] = (out.add_stream_from_template(stream), False)
                else:
                    encoded = out.add_stream(target, rate=_audio_rate(target, stream.rate),
                                             layout=stream.layout.name)
                    self._outputs[stream.index] = (encoded, True)
        self._out, self._path = out, source
        self._packets = self._source.demux(*streams) if streams else iter(())
        self._offset = start + _video_origin(self._source)
        self._held = None

    def copy_until(self, seconds: float) -> None:
        """Mux every source packet that starts before ``seconds`` of output time."""
        with _library_errors(self._path, "copy audio from"):
            while True:
                packet, self._held = self._held or next(self._packets, None), None
                if packet is None:
                    return
                if packet.size == 0 or packet.pts is None:
                    continue
                begin = float(packet.pts * packet.time_base) - self._offset
                if begin >= seconds:
                    self._held = packet
                    return
                if self._offset > 0 and begin + float((packet.duration or 0) * packet.time_base) <= 0:
                    continue  # wholly before the start
                self._mux(packet)

    def _mux(self, packet) -> None:
        stream, reencode = self._outputs[packet.stream.index]
        shift = round(self._offset / packet.time_base)
        if reencode:
            for frame in packet.decode():
                frame.pts = None if frame.pts is None else frame.pts - shift
                self._out.mux(stream.encode(frame))
            return
        packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = stream
        self._out.mux(packet)

    def finish(self, seconds: float) -> None:
        """Copy up to ``seconds``, drop the rest, drain the encoders, close the source."""
        self.copy_until(seconds)
        with _library_errors(self._path, "copy audio from"):
            for stream, reencode in self._outputs.values():
                if reencode:
                    self._out.mux(stream.encode(None))
        self.close()

    def close(self) -> None:
        self._source.close()
