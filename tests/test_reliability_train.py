"""Training, distillation, flow files and export against a demanding user (issue 23, part B): two runs
of one name, resumes that must be exact, hostile flow and .flo files, absurd thread counts, full disks,
cards nested too deep, bad export options, bad seeds, NaN flows and SIGTERM."""

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from tests.flowfiles import write_training_flows
from tests.synthetic import texture
from tests.test_distill import config as distill_config
from tests.test_export import small_net
from tests.test_flowstore import ATTRS, random_clip
from tests.test_train_inputs import _cli, _one_line, _tiny
from vidstyle.cli import main
from vidstyle.errors import FlowFileError, ModelError
from vidstyle.flow.flowstore import FlowFile
from vidstyle.flow.flowwriter import write_clip
from vidstyle.models.looks import describe
from vidstyle.models.net import build_net
from vidstyle.models.zoo import ModelCard, list_models, load_model, save_model
from vidstyle.training.distill import distill
from vidstyle.training.runfiles import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two flow files and a style image: a tiny training set."""
    root = tmp_path_factory.mktemp("inputs")
    write_training_flows(root / "flows")
    cv2.imwrite(str(root / "style.png"), texture(64, 64, seed=9))
    return root


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A small huang teacher and a tiny flow-file training set, for distill."""
    folder = tmp_path_factory.mktemp("distill")
    torch.manual_seed(0)
    net = build_net("huang", channels=(4, 8, 8), res_blocks=1, tone=0.25)
    path = save_model(net, folder / "teacher.safetensors", ModelCard("teacher", net.config, "t.jpg", ""))
    return path, write_training_flows(folder / "flows")


def _quiet(*_):
    return None


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


@contextlib.contextmanager
def file_size_limit(limit):
    """Files this process writes cannot grow past ``limit`` bytes (EFBIG): a disk that is full."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the error, not the signal, is tested
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


# --- item 3: two runs of one name at once -------------------------------------------------------

def test_a_second_training_of_a_running_run_is_refused_as_busy_and_the_first_goes_on(
        data, tmp_path, capsys, monkeypatch):
    import vidstyle.training.train as train_module

    seen, real = [], train_module.pair_loss

    def pair_loss_and_a_second_job(*args, **kwargs):
        if not seen:   # while the first run trains, the same command again
            seen.append(_cli(capsys, tmp_path, *_tiny(data, "--log-every", 1)))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "pair_loss", pair_loss_and_a_second_job)
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--log-every", 1))
    assert code == 0, err
    _one_line(*seen[0][::2], "busy")
    rows = (tmp_path / "run" / "losses.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2"]
    assert not (tmp_path / "run" / ".lock").exists()   # the lock goes with its holder


def test_a_second_distillation_of_a_running_run_is_refused_as_busy(teacher, tmp_path, capsys,
                                                                    monkeypatch):
    import vidstyle.training.distill as distill_module

    teacher_path, flows = teacher
    argv = ["distill", str(teacher_path), "--name", "student", "--flows", str(flows), "--steps", "3",
            "--size", "32", "--runs-dir", str(tmp_path), "--threads", "1", "--device", "cpu", "--quiet"]
    seen, real = [], distill_module.distill_loss

    def loss_and_a_second_job(*args):
        if not seen:
            seen.append(main(argv))
            seen.append(capsys.readouterr().err)
        return real(*args)

    monkeypatch.setattr(distill_module, "distill_loss", loss_and_a_second_job)
    assert main(argv) == 0
    _one_line(seen[0], seen[1], "busy")
    assert load_checkpoint(tmp_path / "student" / "checkpoint.pt")["step"] == 3


def test_a_failed_new_run_removes_only_what_it_wrote(data, tmp_path, capsys):
    assert _cli(capsys, tmp_path, *_tiny(data))[0] == 0
    (tmp_path / "run" / "checkpoint.pt").unlink()   # space saved: the model stays, resuming does not
    (tmp_path / "fake.png").write_text("not a picture")
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--style", tmp_path / "fake.png"))
    _one_line(code, err, "style image")
    assert (tmp_path / "run" / "run.safetensors").is_file() and (tmp_path / "run" / "run.json").is_file()


# --- item 5 and issue 22: distill's run folder is a training run's, and resumes exactly -----------

def test_distill_stopped_halfway_and_resumed_gives_the_very_weights_of_an_uninterrupted_run(
        teacher, tmp_path, capsys, monkeypatch):
    import vidstyle.training.distill as distill_module

    straight = distill_config(teacher, tmp_path / "a", steps=12, checkpoint_every=6)
    distill(straight, log=_quiet)
    calls, real = [], distill_module.distill_loss

    def loss_then_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(distill_module, "distill_loss", loss_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        distill(distill_config(teacher, tmp_path / "b", steps=12, checkpoint_every=6), log=_quiet)
    monkeypatch.undo()
    # The command continues a run from its folder alone: the teacher, data and settings are saved.
    code = main(["distill", "--name", "student", "--runs-dir", str(tmp_path / "b" / "runs"), "--resume",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    run_a, run_b = (tmp_path / x / "runs" / "student" for x in "ab")
    a, b = (load_checkpoint(r / "checkpoint.pt") for r in (run_a, run_b))
    assert a["step"] == b["step"] == 12
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    assert _files(run_b) == ["checkpoint.pt", "config.json", "losses.csv", "student.json",
                             "student.safetensors"]
    assert json.loads((run_b / "config.json").read_text())["teacher"] == straight.teacher
    steps = [line.split(",")[0] for line in (run_b / "losses.csv").read_text().splitlines()[1:]]
    assert steps == ["6", "12"]


# --- items 8 and 15: flow files whose attributes lie or have the wrong type ----------------------

def _flow_file(folder):
    folder.mkdir(exist_ok=True)
    return write_clip(folder / "clip.h5", *random_clip(), attrs=ATTRS)


def _huge_datasets(h5):
    side = 20000
    for name, shape in (("frames", (4, side, side, 3)), ("flow_fw", (3, side, side, 2)),
                        ("flow_bw", (3, side, side, 2)), ("mask", (3, side, side))):
        dtype = h5[name].dtype
        del h5[name]
        h5.create_dataset(name, shape=shape, dtype=dtype, chunks=(1, 64, 64, *shape[3:]))
    for name in ("valid_fraction", "cut", "frame_std"):
        del h5[name]
    h5.attrs["num_frames"], h5.attrs["height"], h5.attrs["width"] = 4, side, side


LIES = {
    "declared 20000x20000, holds less": lambda h5: h5.attrs.update(height=20000, width=20000),
    "really 20000x20000, all empty": _huge_datasets,
    "num_frames 'abc'": lambda h5: h5.attrs.__setitem__("num_frames", "abc"),
    "height an array": lambda h5: h5.attrs.__setitem__("height", np.arange(3)),
    "format undecodable": lambda h5: h5.attrs.__setitem__("format", np.bytes_(b"\xff\xfe")),
    "fps a string": lambda h5: h5.attrs.__setitem__("fps", "fast"),
}


@pytest.mark.parametrize("lie", LIES)
def test_flow_file_with_lying_or_mistyped_attributes_is_one_line_everywhere(data, tmp_path, capsys, lie):
    path = _flow_file(tmp_path / "flows")
    with h5py.File(path, "a") as h5:
        LIES[lie](h5)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(FlowFileError):
        FlowFile(path)
    # inspect, in a process that may not allocate gigabytes
    job = subprocess.run([sys.executable, "-m", "vidstyle", "flows", "inspect", str(path)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)))
    _one_line(job.returncode, job.stderr, str(path))
    code, _, err = _cli(capsys, tmp_path / "runs", *_tiny(data, "--flows", tmp_path / "flows"))
    _one_line(code, err, str(path))
    assert not (tmp_path / "runs" / "run").exists()


# --- item 9: thread counts beyond the machine ----------------------------------------------------

def test_thread_counts_beyond_the_cpus_are_capped_and_said_once(data, tmp_path, capsys, monkeypatch):
    from vidstyle.device import usable_cores
    from vidstyle.infer.inferconfig import EngineConfig
    from vidstyle.infer.onnxengine import split_threads
    from vidstyle.infer.stylize import plan

    cores = usable_cores()
    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)   # never start 100000 threads here
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--threads", 100000))
    assert code == 0 and asked and max(asked) <= cores, (asked, err)
    assert err.count("--threads 100000") == 1 and "capped" in err and "Traceback" not in err
    with pytest.warns(UserWarning) as said:
        assert split_threads(100000, 100000, cores=2) == (2, 1, 2)
    assert sorted(str(w.message).split(",")[0] for w in said) == ["--streams 100000: capped at 2",
                                                                   "--threads 100000: capped at 2"]
    with pytest.warns(UserWarning, match="--threads 100000: capped"):
        assert plan(EngineConfig(device="cpu", threads=100000)).threads <= cores


def test_loader_workers_beyond_the_cpus_are_capped(data, monkeypatch):
    import vidstyle.device
    from vidstyle.training.data import PairDataset
    from vidstyle.training.setup import setup_device
    from vidstyle.training.train import _make_loader
    from vidstyle.training.trainconfig import TrainConfig

    monkeypatch.setattr(vidstyle.device, "usable_cores", lambda: 2)
    dataset = PairDataset([data / "flows"], crop=32)
    config = TrainConfig(style=str(data / "style.png"), name="w", workers=100000)
    with pytest.warns(UserWarning, match="--workers 100000: capped at 2"):
        loader = _make_loader(dataset, config, setup_device("cpu", None), 0)
    assert loader.num_workers == 2


# --- item 10: .flo files that are not regular files, or lie about their size ---------------------

def _read_flo_in_child(path):
    """read_flo(path) in a process that may use 1 GB and 60 s: (exit status, what it printed)."""
    code = ("import sys\nfrom vidstyle.io.flo import read_flo\nfrom vidstyle.errors import FlowFileError\n"
            "try:\n    read_flo(sys.argv[1]); print('read')\n"
            "except FlowFileError as exc:\n    print('refused:', exc)\n")
    try:
        job = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                             timeout=60, cwd=ROOT,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)))
    except subprocess.TimeoutExpired:
        return None, "hung"
    return job.returncode, job.stdout + job.stderr


@pytest.mark.parametrize("kind", ["link to /dev/zero", "fifo", "folder", "header says 30000x30000"])
def test_a_flo_that_is_no_regular_file_or_lies_about_its_size_is_refused_at_once(tmp_path, kind):
    path = tmp_path / "bad.flo"
    if kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(np.array([202021.25], "<f4").tobytes() + np.array([30000, 30000], "<i4").tobytes())
    started = time.monotonic()
    code, out = _read_flo_in_child(path)
    assert code == 0 and out.startswith("refused:") and out.count("\n") == 1, out
    assert time.monotonic() - started < 30
    if kind != "header says 30000x30000":
        assert "not a regular file" in out


# --- item 13: full disks -------------------------------------------------------------------------

def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys):
    net = small_net()
    weights = save_model(net, tmp_path / "small.safetensors", ModelCard("small", net.config, "x.jpg", ""))
    (tmp_path / "out").mkdir()
    with file_size_limit(4096):
        code = main(["export", str(weights), "--onnx", str(tmp_path / "out" / "small.onnx")])
    _one_line(code, capsys.readouterr().err, "small.onnx", "File too large")
    assert _files(tmp_path / "out") == []


def test_a_full_cache_disk_makes_a_short_cpu_job_run_on_torch_and_say_so(tmp_path, capsys, monkeypatch):
    import cv2

    from tests.synthetic import texture
    from tests.testmodel import run_cli, save_untrained

    model = save_untrained(tmp_path)
    cv2.imwrite(str(tmp_path / "in.png"), texture(48, 64, seed=1))
    monkeypatch.setenv("VIDSTYLE_CACHE", str(tmp_path / "cache"))
    with file_size_limit(64 << 10):    # the photo fits, the network's export does not
        code, _, err = run_cli(capsys, "infer", tmp_path / "in.png", "--model", model, "--backend", "auto",
                               "-o", tmp_path / "out.png")
    assert code == 0, err
    assert (tmp_path / "out.png").is_file()
    assert "torch" in err and "cache" in err and err.count("\n") == 1, err
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_a_checkpoint_on_a_full_disk_is_one_line_and_a_new_run_leaves_nothing(data, tmp_path, capsys):
    with file_size_limit(256 << 10):
        code, _, err = _cli(capsys, tmp_path, *_tiny(data))
    _one_line(code, err, "checkpoint", "File too large")
    assert not (tmp_path / "run").exists()


def test_a_distilled_model_lost_to_a_full_disk_leaves_no_orphan_card_and_resume_writes_it(
        teacher, tmp_path, capsys, monkeypatch):
    import safetensors.torch

    teacher_path, flows = teacher
    argv = ["distill", str(teacher_path), "--name", "student", "--flows", str(flows), "--steps", "2",
            "--size", "32", "--runs-dir", str(tmp_path), "--threads", "1", "--device", "cpu", "--quiet"]
    real = safetensors.torch.save_file

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)
        raise safetensors.SafetensorError("Error while serializing: IoError(Os { code: 28, kind: "
                                          "StorageFull, message: \"No space left on device\" })")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    code = main(argv)
    _one_line(code, capsys.readouterr().err, "student.safetensors", "No space left on device")
    assert _files(tmp_path / "student") == ["checkpoint.pt", "config.json", "losses.csv"]
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    assert main(["distill", "--name", "student", "--runs-dir", str(tmp_path), "--resume", "--quiet"]) == 0
    assert load_model(tmp_path / "student" / "student.safetensors").card.trained["distilled"]["steps"] == 2


# --- item 14: a model card nested too deep -------------------------------------------------------

def test_a_card_nested_too_deep_is_one_model_error_and_hides_no_other_model(tmp_path, capsys):
    net = small_net()
    good = save_model(net, tmp_path / "good.safetensors", ModelCard("good", net.config, "x.jpg", "fine"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes())
    bad.with_suffix(".json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ModelError, match="bad.json"):
        load_model(bad)
    entries = list_models(weights_dir=tmp_path, runs_dir=None, env={})
    rows = {row["name"]: row for row in describe(entries)}
    assert rows["good"]["description"] == "fine" and "unusable" in rows["bad"]["description"]
    import cv2

    from tests.synthetic import texture

    cv2.imwrite(str(tmp_path / "x.png"), texture(16, 16, seed=1))
    code = main(["infer", str(tmp_path / "x.png"), "--model", str(bad), "-o", str(tmp_path / "y.png")])
    _one_line(code, capsys.readouterr().err, "bad.json")


# --- item 20: export options ---------------------------------------------------------------------

@pytest.mark.parametrize("problem", ["folder", "opset 99", "opset 1"])
def test_export_to_a_folder_or_with_an_unsupported_opset_is_one_line(tmp_path, capsys, problem):
    net = small_net()
    weights = save_model(net, tmp_path / "small.safetensors", ModelCard("small", net.config, "x.jpg", ""))
    out = tmp_path / "small.onnx"
    extra = []
    if problem == "folder":
        out.mkdir()
    else:
        extra = ["--opset", problem.split()[1]]
    code = main(["export", str(weights), "--onnx", str(out), *extra])
    err = capsys.readouterr().err
    _one_line(code, err, "folder" if problem == "folder" else "11 to 20")
    assert out.is_dir() if problem == "folder" else not out.exists()


# --- item 21: seeds out of range -----------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_out_of_range_is_one_line_and_leaves_no_run(data, teacher, tmp_path, capsys, seed):
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--seed", seed))
    _one_line(code, err, "--seed")
    teacher_path, flows = teacher
    code = main(["distill", str(teacher_path), "--name", "run", "--flows", str(flows), "--seed", seed,
                 "--runs-dir", str(tmp_path), "--quiet"])
    _one_line(code, capsys.readouterr().err, "--seed")
    assert not (tmp_path / "run").exists()


# --- item 23: NaN flows --------------------------------------------------------------------------

def test_nan_flows_are_named_as_such_and_the_run_leaves_nothing(data, tmp_path, capsys):
    frames, flows_fw, flows_bw, masks = random_clip()
    flows_bw[[0, 2]] = np.nan   # pair 1, the preview's, is fine: the run starts, then meets them
    (tmp_path / "nan").mkdir()
    write_clip(tmp_path / "nan" / "clip.h5", frames, flows_fw, flows_bw, masks, ATTRS)
    code, _, err = _cli(capsys, tmp_path / "runs", *_tiny(data, "--flows", tmp_path / "nan", "--steps", 6,
                                                          "--checkpoint-every", 100))
    _one_line(code, err, "clip.h5", "non-finite")
    assert "constant" not in err
    assert not (tmp_path / "runs" / "run").exists()


# --- item 27: SIGTERM ----------------------------------------------------------------------------

def _stop_with_sigterm(argv, checkpoint):
    # -X faulthandler: a job that does not end is made to show where it stands (SIGABRT).
    job = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "vidstyle", *map(str, argv)],
                           cwd=ROOT, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        job.send_signal(signal.SIGABRT)
        _, err = job.communicate(timeout=30)
        err = "did not stop:\n" + err
    finally:
        if job.poll() is None:
            job.kill()
    return job.returncode, err


def test_sigterm_stops_training_and_distillation_with_the_way_to_resume(data, teacher, tmp_path):
    code, err = _stop_with_sigterm(["train", "--name", "run", "--runs", tmp_path, "--device", "cpu",
                                    "--threads", "1", "--quiet", *_tiny(data, "--steps", 100000)],
                                   tmp_path / "run" / "checkpoint.pt")
    assert code == 130 and err.strip().count("\n") == 0 and "stopped" in err and "--resume" in err, err
    teacher_path, flows = teacher
    code, err = _stop_with_sigterm(["distill", teacher_path, "--name", "student", "--flows", flows,
                                    "--size", 32, "--steps", 100000, "--runs-dir", tmp_path, "--threads", 1,
                                    "--quiet"],
                                   tmp_path / "student" / "checkpoint.pt")
    assert code == 130 and "stopped" in err and "--resume" in err, err
