"""Small synthetic clip files for tests across the project (written with PyAV, not with vidstyle).

The clip writer here is deliberately independent of ``vidstyle.io.video`` so that tests of that module do
not check the code with itself. Everything is deterministic and takes milliseconds at test sizes.

    from tests.clips import write_test_clip, make_frame_folder, distinct_frames
    frames = distinct_frames(12, width=64, height=48)     # uint8 RGB (12, 48, 64, 3)
    path = write_test_clip(tmp_path / "a.mp4", frames, fps=24, audio=True)
    folder = make_frame_folder(tmp_path / "shot", frames)  # 00000.png, 00001.png, ...
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

AUDIO_RATE = 48000
AUDIO_TONE_HZ = 440.0


def distinct_frames(num_frames: int, width: int = 64, height: int = 48) -> np.ndarray:
    """uint8 RGB (num_frames, height, width, 3): smooth frames, each easy to tell from its neighbours.

    A colour gradient, plus a bright vertical bar that moves 3 pixels a frame and a brightness step of
    40 levels per frame (cycling), so frame t survives lossy coding as "closest to original t".
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 0.5 + 0 * x], axis=-1) * 120.0
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frame = base + (40 * t) % 120
        bar = (3 * t) % width
        frame[:, bar:bar + 4] = 250.0
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def write_test_clip(path: str | os.PathLike, frames: Sequence[np.ndarray] | np.ndarray,
                    fps: float | Fraction = 24, audio: bool = False, lossless: bool = False,
                    rotation: int = 0, interlaced: bool = False) -> Path:
    """Encode uint8 RGB frames (H, W, 3) to ``path`` and return it as a Path.

    H.264 (libx264, crf 18, yuv420p; yuv444p when a side is odd) by default; ``lossless=True`` stores
    the exact pixels (libx264rgb, qp 0), ``.webm`` uses VP9. MP4/MOV files are written with the index
    first (faststart), so a truncated copy still opens and decodes up to the cut. ``audio=True`` adds
    a 440 Hz sine track (AAC, 48 kHz mono; Opus for .webm) as long as the video. ``rotation``
    (degrees counterclockwise) is stored as a display matrix: players show the frames turned.
    ``interlaced=True`` codes the H.264 frames as two fields each, top field first, as a camcorder or a
    broadcast does (the frames given should hold two moments, one on the even lines, one on the odd).
    """
    path = Path(path)
    frames = [np.ascontiguousarray(f) for f in frames]
    height, width = frames[0].shape[:2]
    rate = Fraction(fps).limit_denominator(100000)
    webm = path.suffix.lower() == ".webm"
    options = {"movflags": "+faststart"} if path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    with av.open(str(path), "w", container_options=options) as out:
        if lossless:
            video = out.add_stream("libx264rgb", rate=rate, options={"qp": "0", "preset": "ultrafast"})
            video.pix_fmt = "rgb24"
        elif webm:
            video = out.add_stream("libvpx-vp9", rate=rate, options={"crf": "30", "b": "0"})
            video.pix_fmt = "yuv420p"
        else:
            fields = {"flags": "+ildct+ilme", "x264-params": "tff=1"} if interlaced else {}
            video = out.add_stream("libx264", rate=rate,
                                   options={"crf": "18", "preset": "ultrafast", **fields})
            video.pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"
        video.width, video.height = width, height
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = out.add_stream("libopus" if webm else "aac", rate=AUDIO_RATE, layout="mono")
        for t, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = t
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None:
            _write_tone(out, sound, seconds=len(frames) / rate)
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                seconds: float) -> None:
    """A sine tone of ``seconds`` into ``stream``, in the encoder's own frame size and sample format."""
    total = round(seconds * AUDIO_RATE)
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        tone = 0.3 * np.sin(2 * np.pi * AUDIO_TONE_HZ * (start + np.arange(count)) / AUDIO_RATE)
        frame = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def make_frame_folder(folder: str | os.PathLike, frames: Sequence[np.ndarray] | np.ndarray,
                      pattern: str = "{:05d}.png", start: int = 0) -> Path:
    """Write uint8 RGB frames as numbered images (``pattern.format(start + t)``) and return the folder.

    PNG keeps the pixels exact; give a ``.jpg`` pattern for lossy frames.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        file = folder / pattern.format(start + t)
        if not cv2.imwrite(str(file), np.ascontiguousarray(frame[..., ::-1])):
            raise OSError(f"could not write {file}")
    return folder


def write_garbage(path: str | os.PathLike, size: int = 4096) -> Path:
    """A file of ``size`` bytes of plain text that no demuxer accepts (whatever its extension)."""
    path = Path(path)
    line = b"this is not a video, only text pretending to be one.\n"
    path.write_bytes((line * (size // len(line) + 1))[:size])
    return path


def truncate(path: str | os.PathLike, fraction: float) -> Path:
    """Cut the file at ``path`` to ``fraction`` (0..1) of its size, in place, as a failed copy would."""
    path = Path(path)
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * fraction))
    return path


def write_vfr_clip(path: str | os.PathLike, times: Sequence[float], width: int = 48,
                   height: int = 32) -> Path:
    """``distinct_frames`` stamped at ``times`` (seconds, increasing) in a 1/90000 clock: a clip
    with a variable frame rate, as phones and screen recorders write. H.264 (ultrafast)."""
    path = Path(path)
    tick = Fraction(1, 90000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(5), options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = stream.time_base = tick
        for seconds, frame in zip(times, distinct_frames(len(times), width, height)):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = round(Fraction(seconds) / tick)
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return path
