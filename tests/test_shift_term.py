"""The exact-shift stability term in training: weighted into the total, logged, recorded, checked."""

import json

import pytest
import torch

from tests.test_reconet_terms import _pair_terms, texture
from tests.test_train import data, tiny_config  # noqa: F401  (data is a fixture)
from vidstyle.cli import main
from vidstyle.training.train import train


def _batch():
    frame = texture(2, 48, seed=5)
    return {"frame_t": frame, "frame_t1": frame.clone(),
            "flow_bw": torch.zeros(2, 2, 48, 48), "mask": torch.ones(2, 1, 48, 48)}


def test_the_shift_term_enters_the_total_at_its_weight():
    off, _ = _pair_terms(_batch(), compound_weight=0.0)
    on, _ = _pair_terms(_batch(), compound_weight=0.0, shift_weight=1e4)
    assert off["shift"] == 0.0 and on["shift"] > 0
    assert on["total"] == pytest.approx(off["total"] + 1e4 * on["shift"], rel=1e-5)
    # weighted alone, it still reaches the encoder's weights
    _, grads = _pair_terms(_batch(), content_weight=0.0, style_weight=0.0, tv_weight=0.0,
                           temporal_weight=0.0, compound_weight=0.0, shift_weight=1.0)
    assert grads > 0


def test_a_run_with_the_shift_term_logs_it_and_records_it_in_its_card(data, tmp_path):  # noqa: F811
    result = train(tiny_config(data, tmp_path, steps=3, shift_weight=1e5), progress=False)
    rows = (result.run_dir / "losses.csv").read_text().splitlines()
    column = rows[0].split(",").index("shift")
    assert all(float(row.split(",")[column]) > 0 for row in rows[1:])
    card = json.loads((result.run_dir / "tiny.json").read_text())["trained"]
    assert card["weights"]["shift"] == 1e5


def test_cli_takes_the_weight_and_refuses_a_negative_one_or_a_tiny_crop(data, tmp_path, capsys):  # noqa: F811
    common = ["train", "--style", str(data / "style.png"), "--flows", str(data / "flows"),
              "--runs", str(tmp_path), "--steps", "2", "--batch", "1", "--style-size", "64",
              "--device", "cpu", "--threads", "1"]
    assert main([*common, "--size", "32", "--name", "bad", "--shift-weight", "-1"]) == 2
    assert "must not be negative" in capsys.readouterr().err
    assert main([*common, "--size", "19", "--name", "tiny", "--shift-weight", "1"]) == 2
    assert "--size of at least 20" in capsys.readouterr().err
    # the smallest crop the term takes trains with it
    assert main([*common, "--size", "20", "--name", "smallest", "--shift-weight", "1"]) == 0
    assert main([*common, "--size", "32", "--name", "ok", "--shift-weight", "5"]) == 0
    assert json.loads((tmp_path / "ok" / "config.json").read_text())["shift_weight"] == 5.0
