"""Output files of `vidstyle infer` and the video writer under misuse: files that look like our
temporaries, two jobs on one output, variable frame rates, cut inputs, bad times and names, links
to the input, signals. Each test names what could go wrong and checks that it does not."""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.clips import distinct_frames, truncate, write_test_clip, write_vfr_clip
from vidstyle.cli import main
from vidstyle.fsutil import atomic_output
from vidstyle.infer.onnxengine import OnnxStylizer
from vidstyle.infer.stylize import Stylizer
from vidstyle.io.encode import VideoWriter
from vidstyle.io.video import iter_frames, probe

ROOT = Path(__file__).resolve().parents[1]
VFR_TIMES = [0.0, 0.04, 0.08, 0.5, 0.54, 1.2, 1.24, 1.28, 1.9, 2.0]  # seconds; gaps up to 0.66 s


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """1 second at 12 frames/s, 48x32."""
    return write_test_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", distinct_frames(12, 48, 32),
                           fps=12)


def _infer(capsys, *args):
    code = main(["infer", *map(str, args), "--quiet", "--device", "cpu", "--threads", "1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _files(folder):
    """Every name in ``folder``, hidden ones (our temporaries) included."""
    return sorted(p.name for p in Path(folder).iterdir())


def _frame_times(path):
    """Presentation times (seconds from the first frame) of every decoded frame, and the tick."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(frame.time) for frame in container.decode(stream)]
        return np.array(times) - times[0], float(stream.time_base)


# --- 1: files that look like temporaries are not ours to delete ------------------------------------

def test_an_input_named_like_the_outputs_temporary_survives_the_job(capsys, tmp_path, clip, model):
    source = tmp_path / "x.tmp.mp4"
    source.write_bytes(clip.read_bytes())
    code, _, err = _infer(capsys, source, "--model", model, "-o", tmp_path / "x.mp4")
    assert code == 0, err
    assert source.read_bytes() == clip.read_bytes()
    assert probe(tmp_path / "x.mp4").num_frames == 12
    assert _files(tmp_path) == ["x.mp4", "x.tmp.mp4"]


def test_atomic_output_never_removes_a_file_it_did_not_create(tmp_path):
    bystanders = {name: f"data of {name}".encode() for name in ("r.tmp.txt", "r.txt.tmp", ".r.tmp.txt")}
    for name, data in bystanders.items():
        (tmp_path / name).write_bytes(data)
    with atomic_output(tmp_path / "r.txt") as tmp:
        tmp.write_text("report")
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "r.txt") as tmp:
            raise RuntimeError("failed half way")
    assert (tmp_path / "r.txt").read_text() == "report"
    assert {name: (tmp_path / name).read_bytes() for name in bystanders} == bystanders
    assert len(_files(tmp_path)) == 4


# --- 2: two jobs writing one output -------------------------------------------------------------

def test_two_writers_of_one_output_never_share_a_temporary_and_both_finish_whole(tmp_path):
    frames = distinct_frames(12, 48, 32)
    out = tmp_path / "s.mp4"
    # ultrafast: no lookahead, so both files are open and written from the first frame
    first, second = VideoWriter(out, 8, preset="ultrafast"), VideoWriter(out, 8, preset="ultrafast")
    with first:
        with second:
            for frame in frames[:10]:  # interleaved, as two processes would be
                first.write(frame)
                second.write(frame[::-1].copy())
            second.write(frames[10])
        assert probe(out).num_frames == 11
    decoded = np.stack(list(iter_frames(out)))
    assert len(decoded) == 10 and np.abs(decoded.astype(int) - frames[:10]).mean() < 4
    assert _files(tmp_path) == ["s.mp4"]


# --- 5: variable frame rate ---------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_input_keeps_each_frames_time(capsys, tmp_path, model, suffix):
    source = write_vfr_clip(tmp_path / f"phone{suffix}", VFR_TIMES)
    source_times, source_tick = _frame_times(source)
    assert np.allclose(source_times, VFR_TIMES, atol=1e-3)
    out = tmp_path / f"out{suffix}"
    code, _, err = _infer(capsys, source, "--model", model, "-o", out)
    assert code == 0, err
    times, tick = _frame_times(out)
    assert len(times) == len(VFR_TIMES)
    assert np.max(np.abs(times - source_times)) <= max(tick, source_tick)


def test_start_and_duration_select_a_variable_rate_input_by_time(capsys, tmp_path, model):
    source = write_vfr_clip(tmp_path / "phone.mp4", VFR_TIMES)
    out = tmp_path / "part.mp4"
    code, _, err = _infer(capsys, source, "--model", model, "-o", out, "--start", "0.45",
                          "--duration", "0.9")
    assert code == 0, err
    with av.open(str(out)) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    expected = [t - 0.45 for t in VFR_TIMES if 0.45 <= t < 1.35]  # 0.5, 0.54, 1.2, 1.24, 1.28
    assert np.allclose(times, expected, atol=1e-3)


def test_constant_rate_input_stays_evenly_spaced_at_its_rate(capsys, tmp_path, clip, model):
    code, _, err = _infer(capsys, clip, "--model", model, "-o", tmp_path / "out.mp4")
    assert code == 0, err
    times, _ = _frame_times(tmp_path / "out.mp4")
    assert np.allclose(times, np.arange(12) / 12, atol=1e-6)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].average_rate == 12


# --- 6: cut input -------------------------------------------------------------------------------

def test_truncated_input_is_kept_only_under_a_partial_name(capsys, tmp_path, model):
    source = truncate(write_test_clip(tmp_path / "cut.mp4", distinct_frames(24, 64, 48), fps=12), 0.5)
    out = tmp_path / "out.mp4"
    code, stdout, err = _infer(capsys, source, "--model", model, "-o", out)
    partial = tmp_path / "out.partial.mp4"
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not out.exists() and "truncated" in err and str(partial) in err
    kept = probe(partial).num_frames
    assert 0 < kept < 24 and f"{kept} frames" in err and str(partial) in stdout
    assert _files(tmp_path) == ["cut.mp4", "out.partial.mp4"]


# --- 11 and other mistakes on the command line --------------------------------------------------

@pytest.mark.parametrize("option,value", [("--start", "nan"), ("--start", "inf"), ("--start", "-1"),
                                          ("--duration", "inf"), ("--duration", "nan"),
                                          ("--duration", "0")])
def test_impossible_start_or_duration_is_one_line_and_exit_2(capsys, tmp_path, clip, model, option,
                                                             value):
    code, _, err = _infer(capsys, clip, "--model", model, "-o", tmp_path / "o.mp4", option, value)
    assert code == 2 and len(err.strip().splitlines()) == 1 and option in err
    assert _files(tmp_path) == []


@pytest.mark.parametrize("name,message", [("out", "extension"), ("out.png", "extension"),
                                          ("out.gif", "extension"),
                                          ("file.txt/out.mp4", "does not exist")])
def test_unusable_output_name_is_refused_before_any_frame_is_stylized(capsys, tmp_path, clip, model,
                                                                      monkeypatch, name, message):
    (tmp_path / "sub").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    calls = []
    for engine in (Stylizer, OnnxStylizer):    # whichever backend auto picks
        monkeypatch.setattr(engine, "_run_batch", lambda self, batch: calls.append(1) or batch)
    code, _, err = _infer(capsys, clip, "--model", model, "-o", f"{tmp_path}/{name}")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert calls == [] and _files(tmp_path) == ["file.txt", "sub"] and _files(tmp_path / "sub") == []


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symlink", "hard link"])
@pytest.mark.parametrize("target", ["out.mp4", "out.partial.mp4"])
def test_output_that_is_the_input_under_another_name_is_refused(capsys, tmp_path, clip, model, link,
                                                                target):
    source = tmp_path / "in.mp4"
    source.write_bytes(clip.read_bytes())
    link(source, tmp_path / target)
    code, _, err = _infer(capsys, source, "--model", model, "-o", tmp_path / "out.mp4")
    assert code == 2 and "overwrite the input" in err
    assert source.read_bytes() == clip.read_bytes() and len(_files(tmp_path)) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_folder_is_refused_up_front(capsys, tmp_path, clip, model):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    code, _, err = _infer(capsys, clip, "--model", model, "-o", locked / "o.mp4")
    assert code == 2 and "permission denied" in err and _files(locked) == []


# --- interruption -------------------------------------------------------------------------------

def _sigint_as_in_a_terminal():
    # A shell starts background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: restore the default so the test sees what a terminal's Ctrl-C does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_signal_mid_job_leaves_neither_output_nor_temporary(tmp_path, model, signum):
    source = write_test_clip(tmp_path / "long.mp4", distinct_frames(300, 160, 120), fps=24)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    job = subprocess.Popen([sys.executable, str(ROOT / "infer.py"), str(source), "--model", str(model),
                            "-o", str(out_dir / "o.mp4"), "-q", "--device", "cpu", "--threads", "1",
                            "--no-compile"], stderr=subprocess.PIPE, text=True,
                           preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.monotonic() + 60
    while not _files(out_dir) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # frames are being encoded into the temporary now
    job.send_signal(signum)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130 and err.strip().splitlines() == ["vidstyle: interrupted"]
    assert _files(out_dir) == []


def _file_size_limit(limit: int):
    """For a child process: writes past ``limit`` bytes fail with EFBIG, as on a full disk."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error, not the signal, is what we test
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_while_encoding_is_one_line_exit_2_and_no_file(tmp_path, model):
    # lossless 160x120 frames are ~40 kB each: 60 kB are full a few frames in
    source = write_test_clip(tmp_path / "in.mp4", distinct_frames(24, 160, 120), fps=24)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    job = subprocess.run([sys.executable, str(ROOT / "infer.py"), str(source), "--model", str(model),
                          "-o", str(out_dir / "o.mp4"), "--lossless", "-q", "--device", "cpu",
                          "--threads", "1", "--no-compile"], capture_output=True, text=True,
                         preexec_fn=_file_size_limit(60_000), timeout=120)
    assert job.returncode == 2 and len(job.stderr.strip().splitlines()) == 1
    assert "o.mp4" in job.stderr and "File too large" in job.stderr
    assert _files(out_dir) == []
