"""The flow precompute batch job: discovery, sharding, workers, resuming, failures, CLI errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.clips import make_frame_folder, write_test_clip
from tests.synthetic import moving_square_clip
from vidstyle.batchwork import in_shard
from vidstyle.cli import main
from vidstyle.errors import ConfigError
from vidstyle.flow.flowstore import FlowFile, validate
from vidstyle.flow.precompute import FlowJob, find_clips, pairs_written, run_batch

ROOT = Path(__file__).resolve().parents[1]


def make_clips(folder: Path, count: int = 3, frames: int = 5, size=(64, 48)) -> list[Path]:
    """``count`` small video files of a moving square (each a different seed) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        video = moving_square_clip(frames, size[1], size[0], seed=i)
        paths.append(write_test_clip(folder / f"clip{i}.mp4", video))
    return paths


def read_manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_find_clips_gives_stable_relative_ids_and_counts_frame_folders_as_clips(tmp_path):
    make_clips(tmp_path / "videos", count=1)
    make_clips(tmp_path / "videos" / "sub", count=1)
    make_frame_folder(tmp_path / "videos" / "shot", moving_square_clip(3, 48, 64))
    (tmp_path / "videos" / "notes.txt").write_text("not a clip")
    # Numbered pictures beside videos (as in opencv-doc's samples) do not make the folder a clip.
    make_frame_folder(tmp_path / "videos", moving_square_clip(2, 48, 64))
    clips, others = find_clips([tmp_path / "videos"])
    assert [c.id for c in clips] == ["clip0", "shot", "sub__clip0"]
    assert [p.name for p in others] == ["00000.png", "00001.png", "notes.txt"]


def test_two_clips_with_one_id_are_an_error_not_an_overwrite(tmp_path):
    a, = make_clips(tmp_path / "a", count=1)
    b, = make_clips(tmp_path / "b", count=1)
    with pytest.raises(ConfigError, match="clip0.h5"):
        find_clips([a, b])


def test_shards_split_the_clips_into_disjoint_parts_that_cover_all():
    ids = [f"clip_{i:03d}" for i in range(200)]
    parts = [{i for i in ids if in_shard(i, (k, 4))} for k in range(4)]
    assert set().union(*parts) == set(ids)
    assert sum(map(len, parts)) == len(ids)
    assert all(30 <= len(p) <= 70 for p in parts)


def test_batch_with_two_workers_writes_valid_files_then_a_rerun_skips_them(tmp_path):
    make_clips(tmp_path / "videos", count=3, frames=5)
    out = tmp_path / "flows"
    summary = run_batch([tmp_path / "videos"], out, FlowJob(), workers=2, show_progress=False)
    assert summary.count("ok") == 3 and pairs_written(summary) == 3 * 4
    for i in range(3):
        attrs = validate(out / f"clip{i}.h5")
        assert attrs["num_frames"] == 5 and (attrs["width"], attrs["height"]) == (64, 48)
    assert sorted(e["status"] for e in read_manifest(out)) == ["ok"] * 3

    again = run_batch([tmp_path / "videos"], out, FlowJob(), workers=2, show_progress=False)
    assert again.count("skipped") == 3 and again.count("ok") == 0


def test_changed_settings_recompute_instead_of_reusing_a_file(tmp_path):
    make_clips(tmp_path / "videos", count=1, frames=4)
    out = tmp_path / "flows"
    run_batch([tmp_path / "videos"], out, FlowJob(), show_progress=False)
    resized = run_batch([tmp_path / "videos"], out, FlowJob(size=(32, 24)), show_progress=False)
    assert resized.count("ok") == 1
    assert (validate(out / "clip0.h5")["width"], validate(out / "clip0.h5")["height"]) == (32, 24)


def test_stored_flow_matches_the_known_motion_of_the_clip(tmp_path):
    """The square moves +3 px in x per frame over a static background: the stored forward flow
    inside the square (away from its edges) must say so."""
    frames = moving_square_clip(3, 96, 128, size=32, velocity=(3.0, 0.0), seed=0)
    (tmp_path / "v").mkdir()
    write_test_clip(tmp_path / "v" / "square.mp4", frames, lossless=True)
    run_batch([tmp_path / "v"], tmp_path / "f", FlowJob(), show_progress=False)
    with FlowFile(tmp_path / "f" / "square.h5") as clip:
        pair = clip.pair(0)
    still = pair.flow_fw[:16, :16]            # a corner of static background
    inside = pair.flow_fw[40:56, 56:72]       # the middle of the square (x 48..80, y 32..64)
    assert np.abs(still).mean() < 0.5
    np.testing.assert_allclose(inside.reshape(-1, 2).mean(axis=0), (3.0, 0.0), atol=0.5)
    assert pair.mask.mean() > 0.7


def test_a_broken_file_fails_alone_and_the_good_clips_are_done(tmp_path):
    make_clips(tmp_path / "videos", count=2, frames=4)
    (tmp_path / "videos" / "broken.mp4").write_text("this is text, not a video\n")
    out = tmp_path / "flows"
    code = main(["flows", "precompute", str(tmp_path / "videos"), "--out", str(out), "--quiet"])
    assert code == 1
    manifest = {e["id"]: e for e in read_manifest(out)}
    assert manifest["broken"]["status"] == "failed" and "broken.mp4" in manifest["broken"]["error"]
    assert manifest["clip0"]["status"] == manifest["clip1"]["status"] == "ok"
    assert sorted(p.name for p in out.glob("*.h5")) == ["clip0.h5", "clip1.h5"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vidstyle", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


BAD_INPUTS = {"missing": None, "text-as-mp4": b"this is text\n", "zero-length": b""}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, kind):
    source = tmp_path / f"{kind}.mp4"
    if BAD_INPUTS[kind] is not None:
        source.write_bytes(BAD_INPUTS[kind])
    for args in (["flows", "precompute", source, "--out", tmp_path / "out", "--quiet"],
                 ["flows", "inspect", source],
                 ["flows", "show", source, "--out", tmp_path / "x.png"]):
        result = run_cli(*args)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "error" in result.stderr
    assert not list(tmp_path.glob("out/*.h5")) and not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_killed_batch_resumes_and_leaves_only_whole_files(tmp_path):
    make_clips(tmp_path / "videos", count=6, frames=24, size=(160, 120))
    out = tmp_path / "flows"
    args = [sys.executable, "-m", "vidstyle", "flows", "precompute", str(tmp_path / "videos"),
            "--out", str(out), "--workers", "2", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    batch = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.h5.*.tmp")) and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(batch.pid, signal.SIGKILL)
    batch.wait()
    # The workers die with the parent (PR_SET_PDEATHSIG); on a loaded machine that can take a
    # moment, so wait until the folder stops changing before counting what was finished.
    listing, stable_since = None, time.monotonic()
    while time.monotonic() - stable_since < 2.0 and time.monotonic() < deadline + 30:
        now = sorted(p.name for p in out.iterdir())
        if now != listing:
            listing, stable_since = now, time.monotonic()
        time.sleep(0.1)
    finished_before = sorted(out.glob("*.h5"))
    assert len(finished_before) < 6, "the kill came too late to test resuming"
    for path in finished_before:
        validate(path)

    rerun = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in out.glob("*.h5")) == [f"clip{i}.h5" for i in range(6)]
    for path in out.glob("*.h5"):
        validate(path)
    last_run = read_manifest(out)[-6:]
    assert sum(e["status"] == "skipped" for e in last_run) == len(finished_before)


def test_a_worker_whose_parent_died_while_it_started_exits_at_once():
    # A kill can come while a pool worker is still starting, before it has asked the kernel to end it
    # with its parent; it must then exit instead of waiting for work forever.
    code = ("import sys; from vidstyle.flow.precompute import _die_with_parent; "
            "_die_with_parent(int(sys.argv[1])); print('alive')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", code, str(os.getpid())], env=env, capture_output=True,
                           text=True, timeout=120)
    assert (child.returncode, child.stdout.strip()) == (0, "alive"), child.stderr
    orphan = subprocess.run([sys.executable, "-c", code, str(os.getpid() + 1)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert (orphan.returncode, orphan.stdout.strip()) == (1, ""), orphan.stderr


def test_workers_beyond_the_cpus_are_capped_and_said_once(tmp_path, capsys, monkeypatch):
    import vidstyle.device
    import vidstyle.flow.precompute as precompute

    make_clips(tmp_path / "videos", count=3, frames=3)
    asked = []
    real = precompute.run_batch
    monkeypatch.setattr(precompute, "run_batch",
                        lambda *a, **kw: asked.append(kw["workers"]) or real(*a, **kw))
    monkeypatch.setattr(vidstyle.device, "usable_cores", lambda: 1)
    out = tmp_path / "flows"
    code = main(["flows", "precompute", str(tmp_path / "videos"), "--out", str(out), "--quiet",
                 "--workers", "100000"])
    err = capsys.readouterr().err
    assert code == 0 and asked == [1]
    assert err.count("--workers 100000: capped at 1") == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.glob("*.h5")) == ["clip0.h5", "clip1.h5", "clip2.h5"]
    main(["flows", "precompute", str(tmp_path / "videos"), "--out", str(out), "--quiet"])
    assert asked == [1, 1] and "capped" not in capsys.readouterr().err    # the default is the CPUs


def test_frame_step_stores_every_kth_frame_and_the_flow_between_them(tmp_path, capsys):
    """--frame-step 2 on a square moving +3 px a frame: frames 0, 2, 4, 6 of the clip, and the
    stored flow of each pair is the 6 px of two frames."""
    frames = moving_square_clip(7, 96, 128, size=32, velocity=(3.0, 0.0), seed=0)
    (tmp_path / "v").mkdir()
    write_test_clip(tmp_path / "v" / "square.mp4", frames, lossless=True)
    results = run_batch([tmp_path / "v"], tmp_path / "f", FlowJob(frame_step=2), show_progress=False)
    assert [r.pairs for r in results.results] == [3]
    with FlowFile(tmp_path / "f" / "square.h5") as clip:
        assert clip.num_frames == 4 and clip.attrs["frame_step"] == 2
        np.testing.assert_allclose(clip.frame(1).astype(float), frames[2].astype(float), atol=3)
        pair = clip.pair(1)
    np.testing.assert_allclose(pair.flow_fw[40:56, 56:72].reshape(-1, 2).mean(axis=0), (6.0, 0.0), atol=0.7)
    assert main(["flows", "inspect", str(tmp_path / "f" / "square.h5")]) == 0
    assert "one in 2 of the clip's frames: pairs (t, t+2)" in capsys.readouterr().out
    # The step is part of the settings: step 1 recomputes the file instead of reusing it.
    again = run_batch([tmp_path / "v"], tmp_path / "f", FlowJob(), show_progress=False)
    assert again.count("ok") == 1
    with FlowFile(tmp_path / "f" / "square.h5") as clip:
        assert clip.num_frames == 7


def test_frame_step_needs_two_frames_that_far_apart_and_a_positive_step(tmp_path):
    make_clips(tmp_path / "videos", count=1, frames=3)
    summary = run_batch([tmp_path / "videos"], tmp_path / "f", FlowJob(frame_step=3), show_progress=False)
    assert summary.count("failed") == 1
    assert "at least 2 3 apart" in summary.results[0].error
    with pytest.raises(ConfigError, match="--frame-step"):
        FlowJob(frame_step=0).check()


def test_a_card_counts_a_clip_precomputed_at_two_frame_steps_once(tmp_path):
    """flows/ and flows_step2/ from the same two videos: 2 clips, not 4, and pairs 1 and 2 apart."""
    from vidstyle.training.modelcard import data_summary

    (tmp_path / "v").mkdir()
    for seed in (0, 1):
        frames = moving_square_clip(5, 64, 64, size=16, velocity=(2.0, 0.0), seed=seed)
        write_test_clip(tmp_path / "v" / f"clip{seed}.mp4", frames, lossless=True)
    run_batch([tmp_path / "v"], tmp_path / "flows", FlowJob(), show_progress=False)
    assert data_summary([str(tmp_path / "flows")], []) == ["2 clip(s) (8 frame pairs) in flows"]
    run_batch([tmp_path / "v"], tmp_path / "flows_step2", FlowJob(frame_step=2), show_progress=False)
    summary = data_summary([str(tmp_path / "flows"), str(tmp_path / "flows_step2")], [])
    assert summary == ["2 clip(s) (12 frame pairs: 1 and 2 frames apart) in flows, flows_step2"]
