"""Camcorder and broadcast files (MPEG transport streams: .ts, .mts, .m2ts): found in folders, read
from any --start although they have no index to seek by, and their sound kept in step with the
picture when the two streams begin at different times."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.clips import distinct_frames
from tests.testmodel import run_cli
from vidstyle.infer.batch import find_inputs
from vidstyle.io.video import is_clip, iter_frames, iter_timed_frames, probe

RATE, FRAMES, FLASH = 25, 40, 25       # frames a second, frames, the frame that is white
VIDEO_START, AUDIO_START = 10.0, 9.5   # seconds, as a broadcast capture begins mid-programme
SOUND_RATE = 48000


def _write_capture(path, frames=None):
    """An MPEG-TS whose video begins at VIDEO_START and sound at AUDIO_START; frame FLASH is white
    and the sound clicks at the same moment. One keyframe only, as in a long GOP."""
    if frames is None:
        frames = np.zeros((FRAMES, 48, 64, 3), np.uint8)
        frames[FLASH] = 255
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=RATE, options={"preset": "ultrafast", "crf": "18"})
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = out.add_stream("aac", rate=SOUND_RATE, layout="mono")
        for t, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = round(VIDEO_START * RATE) + t, Fraction(1, RATE)
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        samples = np.zeros(round((FRAMES / RATE + 1.0) * SOUND_RATE), np.float32)
        click = round((VIDEO_START + FLASH / RATE - AUDIO_START) * SOUND_RATE)
        samples[click:click + 480] = 0.8
        for begin in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, begin:begin + 1024], format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.time_base = SOUND_RATE, Fraction(1, SOUND_RATE)
            chunk.pts = round(AUDIO_START * SOUND_RATE) + begin
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


def _flash_and_click(path) -> tuple[float, float]:
    """Seconds at which the picture turns white and the sound clicks."""
    with av.open(str(path)) as container:
        flash = next(float(f.time) for f in container.decode(video=0)
                     if f.to_ndarray(format="rgb24").mean() > 128)
    with av.open(str(path)) as container:
        for chunk in container.decode(audio=0):
            loud = np.flatnonzero(np.abs(chunk.to_ndarray()[0]) > 0.3)
            if len(loud):
                return flash, float(chunk.time) + loud[0] / chunk.sample_rate
    raise AssertionError(f"no click in {path}")


def test_start_reads_the_right_frames_of_a_stream_without_an_index(tmp_path):
    frames = distinct_frames(FRAMES)
    clip = _write_capture(tmp_path / "capture.ts", frames)
    whole = np.stack(list(iter_frames(clip)))
    assert len(whole) == FRAMES and np.abs(whole.astype(int) - frames).mean() < 3
    timed = list(iter_timed_frames(clip, start=0.6, duration=0.4))
    assert np.allclose([t for t, _ in timed], np.arange(15, 25) / RATE)
    assert np.array_equal(np.stack([f for _, f in timed]), whole[15:25])


@pytest.mark.parametrize("start", [0.0, 0.6])
def test_sound_stays_with_the_picture_when_the_streams_begin_apart(capsys, tmp_path, model, start):
    clip = _write_capture(tmp_path / "capture.ts")
    flash, click = _flash_and_click(clip)
    assert click - flash == pytest.approx(0, abs=0.005)     # in step in the source
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(capsys, "infer", clip, "--model", model, "-o", out, "--backend", "torch",
                           "--stabilize", "0", "--strength", "0", "--start", start)  # the input's picture
    assert code == 0, err
    assert probe(out).num_frames == FRAMES - round(start * RATE)
    flash, click = _flash_and_click(out)
    assert flash == pytest.approx(FLASH / RATE - start, abs=1e-3)
    assert click - flash == pytest.approx(0, abs=0.005)


def test_camcorder_files_are_clips_found_in_folders(tmp_path):
    for name in ("00001.MTS", "00002.m2ts", "news.ts"):
        _write_capture(tmp_path / name, distinct_frames(4, 32, 24))
    assert is_clip(tmp_path / "00001.MTS")
    items, ignored = find_inputs([tmp_path])
    assert sorted(item.id for item in items) == ["00001.MTS", "00002.m2ts", "news.ts"] and not ignored
