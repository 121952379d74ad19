"""Precompute jobs that meet each other or Ctrl-C: shared output folders, interruption, the manifest."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from tests.test_precompute import ROOT, make_clips, read_manifest
from vidstyle.flow.flowstore import validate
from vidstyle.flow.precompute import Clip, FlowJob, check_writable, claim, process_clip, run_batch

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def precompute(videos, out, *extra):
    return [sys.executable, "-m", "vidstyle", "flows", "precompute", str(videos), "--out", str(out),
            "--quiet", *map(str, extra)]


def test_a_rerun_writes_a_skipped_line_for_every_finished_clip(tmp_path):
    make_clips(tmp_path / "videos", count=2, frames=4)
    out = tmp_path / "flows"
    run_batch([tmp_path / "videos"], out, FlowJob(), show_progress=False)
    run_batch([tmp_path / "videos"], out, FlowJob(), show_progress=False)
    lines = read_manifest(out)
    assert [(e["id"], e["status"]) for e in lines] == [
        ("clip0", "ok"), ("clip1", "ok"), ("clip0", "skipped"), ("clip1", "skipped")]
    assert all(e["output"] == str(out / f"{e['id']}.h5") for e in lines)


def test_a_clip_another_job_is_writing_is_left_to_it(tmp_path):
    source, = make_clips(tmp_path / "videos", count=1, frames=4)
    out = tmp_path / "flows"
    out.mkdir()
    theirs = out / "clip0.h5.0badcafe.tmp"          # the other job's file in progress
    with claim(out / "clip0.h5") as mine:
        assert mine
        theirs.write_bytes(b"half a file")
        result = process_clip(Clip("clip0", source), out, FlowJob())
        assert result.status == "busy" and "another job" in result.error
        assert theirs.read_bytes() == b"half a file" and not (out / "clip0.h5").exists()
    # Once the lock is free, a leftover temporary is the remains of a dead job: it goes.
    assert process_clip(Clip("clip0", source), out, FlowJob()).status == "ok"
    assert sorted(p.name for p in out.iterdir()) == ["clip0.h5"]


def test_jobs_checking_one_output_folder_at_once_never_fail_each_other(tmp_path):
    # Each job proves the folder writable before it starts; with one shared probe name, one job could
    # remove the probe between the other's write and unlink and report the folder as unwritable.
    out = tmp_path / "flows"
    failures = []

    def check_many():
        for _ in range(300):
            try:
                check_writable(out)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(exc)

    threads = [threading.Thread(target=check_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert list(out.iterdir()) == [], "a probe was left behind"


def test_two_jobs_on_one_output_folder_write_each_clip_once_and_report_no_failure(tmp_path):
    make_clips(tmp_path / "videos", count=5, frames=12, size=(96, 72))
    out = tmp_path / "flows"
    jobs = [subprocess.Popen(precompute(tmp_path / "videos", out, "--workers", 1), cwd=ROOT, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    lines = read_manifest(out)
    assert {e["status"] for e in lines} <= {"ok", "skipped", "busy"}, lines
    assert Counter(e["id"] for e in lines if e["status"] == "ok") == {f"clip{i}": 1 for i in range(5)}
    assert sorted(p.name for p in out.iterdir()) == [f"clip{i}.h5" for i in range(5)] + ["manifest.jsonl"]
    for i in range(5):
        validate(out / f"clip{i}.h5")


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_keeps_finished_clips_and_removes_the_rest(tmp_path):
    make_clips(tmp_path / "videos", count=8, frames=20, size=(128, 96))
    out = tmp_path / "flows"
    # A new session, so that the signal can go to the whole process group as a terminal's Ctrl-C does.
    batch = subprocess.Popen(precompute(tmp_path / "videos", out, "--workers", 2), cwd=ROOT, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True,
                             # a shell's background jobs start with SIGINT ignored: undo that here
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while not list(out.glob("*.h5")) and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(batch.pid, signal.SIGINT)
    sent = time.monotonic()
    _, err = batch.communicate(timeout=120)
    print(f"stopped {time.monotonic() - sent:.2f} s after Ctrl-C")
    assert batch.returncode == 130 and "interrupted" in err and "Traceback" not in err

    finished = sorted(p.name for p in out.glob("*.h5"))
    assert 1 <= len(finished) < 8, "the batch ran on after Ctrl-C"
    assert sorted(e["id"] + ".h5" for e in read_manifest(out) if e["status"] == "ok") == finished
    assert sorted(p.name for p in out.iterdir()) == sorted(finished + ["manifest.jsonl"])
    for name in finished:
        validate(out / name)


def test_ctrl_c_while_a_finished_clip_is_recorded_comes_after_the_record():
    # Ctrl-C right as a worker's result arrives must not lose the clip from the log: the file is
    # already in place, so its line has to be written before the batch stops.
    from vidstyle.flow.precompute import _ctrl_c_deferred

    # Python's own Ctrl-C handler, as in a terminal (a job started in the background by a shell
    # inherits SIGINT ignored, and Python then leaves it so).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        record = []
        with pytest.raises(KeyboardInterrupt):
            with _ctrl_c_deferred():
                signal.raise_signal(signal.SIGINT)
                record.append("clip0 ok")
        assert record == ["clip0 ok"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)
