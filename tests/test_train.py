"""Training loop: loss falls, exact resume, run files and model card, NaN stop, DDP path, CLI errors."""

import csv
import json
import math
import socket

import cv2
import numpy as np
import pytest
import torch

from tests.flowfiles import write_training_flows
from vidstyle.cli import main
from vidstyle.errors import ConfigError
from vidstyle.models.zoo import load_model
from vidstyle.training import losses
from vidstyle.training.runfiles import load_checkpoint
from vidstyle.training.train import train
from vidstyle.training.trainconfig import TrainConfig, resume_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny training set: two flow files of moving texture and a striped style image."""
    root = tmp_path_factory.mktemp("data")
    write_training_flows(root / "flows")
    x = np.arange(64)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[..., 0] = np.where((x[None, :] + x[:, None]) % 16 < 8, 230, 20)
    stripes[..., 2] = 255 - stripes[..., 0]
    cv2.imwrite(str(root / "style.png"), cv2.cvtColor(stripes, cv2.COLOR_RGB2BGR))
    return root


def tiny_config(data, runs, name="tiny", **changes) -> TrainConfig:
    settings = dict(style=str(data / "style.png"), flows=[str(data / "flows")], name=name,
                    runs_dir=str(runs), steps=20, batch=1, size=32, style_size=64, lr=1e-2,
                    log_every=1, preview_every=10, checkpoint_every=10, device="cpu", seed=3,
                    threads=1)   # one thread: on shared cores, OpenMP spinning makes two far slower
    settings.update(changes)
    return TrainConfig(**settings)


def test_twenty_steps_lower_the_total_loss(data, tmp_path):
    result = train(tiny_config(data, tmp_path), progress=False)
    with open(result.run_dir / "losses.csv", newline="") as f:
        totals = [float(row["total"]) for row in csv.DictReader(f)]
    assert len(totals) == 20 and all(math.isfinite(t) for t in totals)
    assert np.mean(totals[-4:]) < 0.7 * np.mean(totals[:4])


@pytest.mark.slow
def test_resume_after_step_10_gives_the_same_step_20_weights(data, tmp_path):
    whole = train(tiny_config(data, tmp_path / "a"), progress=False)
    train(tiny_config(data, tmp_path / "b", steps=10), progress=False)
    config = resume_config(tmp_path / "b", "tiny", {"steps": 20})
    resumed = train(config, resume=True, progress=False)
    a = load_checkpoint(whole.run_dir / "checkpoint.pt")
    b = load_checkpoint(resumed.run_dir / "checkpoint.pt")
    assert a["step"] == b["step"] == 20
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg"], b["optimizer"]["state"][0]["exp_avg"])
    with open(resumed.run_dir / "losses.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 21))


def test_max_minutes_stops_early_with_a_model_of_the_steps_taken_and_resume_goes_on(data, tmp_path):
    # A time limit far below one step's time stops after the first step.
    stopped = train(tiny_config(data, tmp_path, max_minutes=1e-6), progress=False)
    assert stopped.steps == 1
    assert load_checkpoint(stopped.run_dir / "checkpoint.pt")["step"] == 1
    assert json.loads((stopped.run_dir / "tiny.json").read_text())["trained"]["steps"] == 1
    config = resume_config(tmp_path, "tiny", {"max_minutes": None})
    finished = train(config, resume=True, progress=False)
    assert finished.steps == 20
    assert load_checkpoint(finished.run_dir / "checkpoint.pt")["step"] == 20
    assert json.loads((finished.run_dir / "tiny.json").read_text())["trained"]["steps"] == 20


def test_run_folder_holds_config_log_previews_checkpoint_and_a_loadable_model(data, tmp_path):
    result = train(tiny_config(data, tmp_path, name="demo"), progress=False)
    run = tmp_path / "demo"
    assert json.loads((run / "config.json").read_text())["size"] == 32
    previews = sorted(p.name for p in (run / "previews").iterdir())
    assert previews == ["step_000010.png", "step_000020.png"]
    picture = cv2.imread(str(run / "previews" / "step_000020.png"))
    assert picture.shape == (32, 3 * 38, 3)   # 40x48 frames, shorter side to 32: 32x38, three panels
    model = load_model(result.weights)
    assert model.card.net == {"name": "huang", "channels": [16, 32, 48], "res_blocks": 5, "end_kernel": 3,
                              "tone": 0.25}
    assert model.card.trained["steps"] == 20 and model.card.metrics["style_loss"] > 0
    assert next(iter(model.net.state_dict().values())).dtype == torch.float32
    assert not list(run.glob("*.tmp*"))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_tv = losses.tv_loss

    def tv_that_breaks_at_step_13(images):
        calls["n"] += 1
        value = real_tv(images)
        return value * float("nan") if calls["n"] >= 13 else value

    monkeypatch.setattr(losses, "tv_loss", tv_that_breaks_at_step_13)
    with pytest.raises(ConfigError, match=r"step 13: tv became NaN.*last good checkpoint"):
        train(tiny_config(data, tmp_path), progress=False)
    state = load_checkpoint(tmp_path / "tiny" / "checkpoint.pt")
    assert state["step"] == 10
    assert all(bool(torch.isfinite(t).all()) for t in state["model"].values())


def test_ddp_path_runs_on_cpu_with_gloo_and_world_size_1(data, tmp_path, monkeypatch):
    import torch.distributed as dist

    with socket.socket() as probe:   # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    try:
        result = train(tiny_config(data, tmp_path, steps=3), progress=False)
        assert dist.is_initialized() and dist.get_backend() == "gloo"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert result.distributed and result.world_size == 1 and result.weights.is_file()


def test_resume_refuses_settings_that_change_the_experiment(data, tmp_path):
    train(tiny_config(data, tmp_path, steps=2), progress=False)
    with pytest.raises(ConfigError, match="lr"):
        resume_config(tmp_path, "tiny", {"lr": 0.5})
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(data, tmp_path, steps=2), progress=False)


def _cli(capsys, *argv):
    code = main(["train", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bad_input_is_one_line_and_exit_2(data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("")
    base = ["--name", "x", "--runs", tmp_path / "runs", "--device", "cpu", "--steps", 1]
    cases = [
        (["--style", tmp_path / "missing.jpg", "--flows", data / "flows"], "style image not found"),
        (["--style", data / "style.png", "--flows", tmp_path / "empty"], "no flow files"),
        (["--style", data / "style.png", "--flows", data / "flows", "--runs", tmp_path / "a_file" / "r"],
         "cannot write the run folder"),
        (["--flows", data / "flows"], "--style is required"),
        (["--style", data / "style.png", "--flows", data / "flows", "--net", "vgg"], "--net"),
    ]
    for extra, message in cases:
        code, _, err = _cli(capsys, *base, *extra)
        assert code == 2, message
        assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_trains_and_resumes_a_run(data, tmp_path, capsys):
    args = ["--name", "cli", "--runs", tmp_path, "--style", data / "style.png", "--flows", data / "flows",
            "--size", 32, "--style-size", 64, "--batch", 1, "--device", "cpu", "--threads", 1, "--quiet"]
    code, out, _ = _cli(capsys, *args, "--steps", 2)
    assert code == 0 and "trained 2 steps" in out
    code, out, _ = _cli(capsys, "--name", "cli", "--runs", tmp_path, "--resume", "--steps", 3, "--quiet")
    assert code == 0 and "trained 3 steps" in out
    assert load_checkpoint(tmp_path / "cli" / "checkpoint.pt")["step"] == 3


def test_describe_prints_parameter_counts_of_every_net(capsys):
    code, out, _ = _cli(capsys, "--describe")
    assert code == 0
    counts = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in out.splitlines()}
    assert set(counts) == {"huang", "johnson", "lite", "lite2"}
    assert counts["lite2"] < counts["lite"] < counts["huang"] < counts["johnson"]
