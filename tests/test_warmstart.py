"""--init MODEL: a run starts from a trained model's weights, found like --model; wrong nets refused."""

import csv
import json

import pytest
import torch

from tests.test_train import _cli, data, tiny_config  # noqa: F401  (data is a fixture)
from vidstyle.errors import ConfigError, ModelError
from vidstyle.models.zoo import load_model
from vidstyle.training.runfiles import load_checkpoint
from vidstyle.training.train import train


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):  # noqa: F811
    """A 20-step model of the tiny data set, in its own runs folder."""
    runs = tmp_path_factory.mktemp("runs")
    return train(tiny_config(data, runs, name="base"), progress=False)


def _first_total(run_dir) -> float:
    with open(run_dir / "losses.csv", newline="") as f:
        return float(next(csv.DictReader(f))["total"])


def test_init_starts_from_the_models_weights_by_path(data, trained, tmp_path):  # noqa: F811
    # A learning rate of 1e-9 moves no weight by more than ~1e-8: the run's weights after one step
    # are the model's, and its first loss is the trained model's, far below a fresh network's.
    config = tiny_config(data, tmp_path, name="warm", steps=1, lr=1e-9, init=str(trained.weights))
    warm = train(config, progress=False)
    fresh = train(tiny_config(data, tmp_path, name="fresh", steps=1, lr=1e-9), progress=False)
    model = load_model(trained.weights).net.state_dict()
    after = load_checkpoint(warm.run_dir / "checkpoint.pt")["model"]
    assert all(torch.allclose(after[k].float(), model[k], atol=1e-6) for k in model)
    assert not torch.allclose(load_checkpoint(fresh.run_dir / "checkpoint.pt")["model"]["encoder.0.1.weight"],
                              model["encoder.0.1.weight"], atol=1e-3)
    assert _first_total(warm.run_dir) < 0.7 * _first_total(fresh.run_dir)


def test_init_is_recorded_in_config_and_card_and_names_resolve_in_the_runs_folder(data, trained):  # noqa: F811
    runs = trained.run_dir.parent
    result = train(tiny_config(data, runs, name="second", steps=1, init="base"), progress=False)
    assert json.loads((result.run_dir / "config.json").read_text())["init"] == "base"
    card = load_model(result.weights).card
    assert card.trained["init"] == "base" and "starting from model base" in card.description


def test_init_with_another_network_is_refused_before_the_run_folder_exists(data, trained, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError, match=r"'huang' network.*--net johnson; pass --net huang"):
        train(tiny_config(data, tmp_path, name="j", net="johnson", init=str(trained.weights)), progress=False)
    assert not (tmp_path / "j").exists()
    with pytest.raises(ModelError, match="unknown model 'nobody'"):
        train(tiny_config(data, tmp_path, name="j", init="nobody"), progress=False)


def test_cli_init_errors_are_one_line_and_exit_2(data, trained, tmp_path, capsys):  # noqa: F811
    base = ["--name", "x", "--runs", tmp_path, "--style", data / "style.png", "--flows", data / "flows",
            "--device", "cpu", "--steps", 1, "--size", 32, "--quiet"]
    for extra, message in [(["--init", trained.weights, "--net", "johnson"], "pass --net huang"),
                           (["--init", tmp_path / "none.safetensors"], "model file not found")]:
        code, _, err = _cli(capsys, *base, *extra)
        assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err
