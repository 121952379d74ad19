"""vidstyle live from a file source, headless: N frames out, dropping to stay live, stdout frames."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.clips import distinct_frames, write_garbage, write_test_clip
from tests.testmodel import run_cli
from vidstyle.infer.live import FrameSource, RawSink, run_live, source_kind
from vidstyle.infer.stylize import EngineConfig, Stylizer
from vidstyle.infer.window import draw_rate
from vidstyle.io.video import iter_frames, probe
from vidstyle.models.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """40 frames at 200 frames/s (0.2 s of source time), 32x24, lossless."""
    return write_test_clip(tmp_path_factory.mktemp("live") / "src.mp4", distinct_frames(40, 32, 24),
                           fps=200, lossless=True)


class SlowStylizer:
    """Stands in for a network slower than the source: inverts the frame after ``delay`` s."""

    def __init__(self, delay: float):
        self.delay, self.calls = delay, 0

    def __call__(self, frames):
        self.calls += 1
        time.sleep(self.delay)
        return 255 - frames


def test_source_kinds():
    assert [source_kind(s) for s in ("0", "12", "rtsp://cam/x", "http://h/v.m3u8", "a.mp4")] == [
        "camera", "camera", "stream", "stream", "file"]


def test_file_source_headless_gives_n_frames_out(capsys, tmp_path, clip, model):
    out = tmp_path / "live.mp4"
    code, _, err = run_cli(capsys, "live", "--model", model, "--source", clip, "--no-window",
                           "--output", out, "--max-frames", "12")
    assert code == 0, err
    info = probe(out)
    assert (info.num_frames, info.fps, info.width, info.height) == (12, 200.0, 32, 24)
    assert not list(tmp_path.glob("*.tmp*"))


def test_slow_network_drops_frames_and_output_keeps_real_time(clip):
    slow = SlowStylizer(delay=0.05)        # 10x slower than the source's 5 ms a frame
    written = []

    class Collect:
        def write(self, rgb):
            written.append(rgb)
    source = FrameSource(str(clip))
    stats = run_live(slow, source, [Collect()])
    assert stats.frames_in == 40 and len(written) == 40 == stats.written
    assert stats.stylized == slow.calls < 40 and stats.dropped == 40 - slow.calls
    inputs = np.stack(list(iter_frames(clip)))
    # Every frame out is the stylized form of one source frame, in order, and after the first
    # stylized one never of a frame later than its own time.
    matched = [next(t for t in range(40) if np.array_equal(written[i], 255 - inputs[t]))
               for i in range(40)]
    assert all(a <= b for a, b in zip(matched, matched[1:]))
    assert all(t <= max(i, matched[0]) for i, t in enumerate(matched))
    assert len(set(matched)) == slow.calls


def test_frames_out_are_the_networks_output_of_source_frames(clip, model):
    stylizer = Stylizer(load_model(model).net, EngineConfig(device="cpu", compile=False, threads=1))
    written = []

    class Collect:
        def write(self, rgb):
            written.append(rgb)
    source = FrameSource(str(clip), max_frames=5, pace=False)
    stats = run_live(stylizer, source, [Collect()])
    assert stats.frames_in == 5 and len(written) == 5
    expected = stylizer(np.stack(list(iter_frames(clip)))[:5])
    assert all(any(np.array_equal(frame, e) for e in expected) for frame in written)


def test_size_option_resizes_frames(capsys, tmp_path, clip, model):
    out = tmp_path / "small.mp4"
    code, _, err = run_cli(capsys, "live", "--model", model, "--source", clip, "--no-window",
                           "--output", out, "--max-frames", "3", "--size", "16x12")
    assert code == 0, err
    assert probe(out).size == (16, 12) and probe(out).num_frames == 3


@pytest.mark.slow
def test_raw_frames_on_stdout_for_ffmpeg(tmp_path, clip, model):
    result = subprocess.run(
        [sys.executable, "-m", "vidstyle", "live", "--model", str(model), "--source", str(clip),
         "--no-window", "--output", "-", "--max-frames", "7", "--device", "cpu", "--threads", "1"],
        capture_output=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout) == 7 * 24 * 32 * 3
    frames = np.frombuffer(result.stdout, np.uint8).reshape(7, 24, 32, 3)
    assert frames.std() > 0
    assert b"ffmpeg -f rawvideo -pix_fmt rgb24 -s 32x24 -r 200" in result.stderr


def test_raw_sink_stops_quietly_when_the_reader_goes_away():
    class Closed:
        def write(self, data):
            raise BrokenPipeError

        def flush(self):
            raise BrokenPipeError
    sink = RawSink(Closed())
    sink.write(np.zeros((2, 2, 3), np.uint8))
    sink.flush()
    assert sink.closed


def test_window_without_a_display_says_use_no_window(capsys, clip, model, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    code, _, err = run_cli(capsys, "live", "--model", model, "--source", clip)
    assert code == 2 and "--no-window" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("source,message", [("missing.mp4", "not found"), ("text.mp4", "text.mp4"),
                                            ("7", "cannot open camera 7")])
def test_unusable_source_is_one_line_exit_2(capsys, tmp_path, model, monkeypatch, source, message):
    write_garbage(tmp_path / "text.mp4")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o.mp4"
    code, _, err = run_cli(capsys, "live", "--model", model, "--source", source, "--no-window",
                           "--output", out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_frame_rate_is_drawn_top_left_only():
    frame = np.full((60, 80, 3), 128, np.uint8)
    drawn = draw_rate(frame, 12.5)
    changed = np.argwhere((drawn != frame).any(axis=-1))
    assert len(changed) > 0 and changed[:, 0].max() < 30 and changed[:, 1].min() == 0
    assert np.array_equal(frame, np.full((60, 80, 3), 128, np.uint8))
