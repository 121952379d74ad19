"""Training runs and bad input: checked before the run folder is touched, one line and exit 2, cards
without machine paths, checkpoints that are not ours, runs that diverge until float16 cannot hold them."""

import argparse
import hashlib
import json

import cv2
import pytest
import torch

from tests.flowfiles import write_training_flows
from tests.synthetic import texture
from vidstyle.cli import main
from vidstyle.errors import ConfigError
from vidstyle.models.zoo import CARD_KEY, load_model
from vidstyle.training.runfiles import load_checkpoint


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two flow files, three photos, a style image, and a file that only pretends to be an image."""
    root = tmp_path_factory.mktemp("inputs")
    write_training_flows(root / "flows")
    (root / "photos").mkdir()
    for seed in range(3):
        cv2.imwrite(str(root / "photos" / f"p{seed}.png"), texture(48, 56, seed=seed))
    cv2.imwrite(str(root / "style.png"), texture(64, 64, seed=9))
    (root / "fake.jpg").write_text("not a picture")
    return root


def _cli(capsys, runs, *argv, name="run"):
    code = main(["train", "--name", name, "--runs", str(runs), "--device", "cpu", "--threads", "1",
                 "--quiet", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tiny(data, *extra):
    return ["--style", data / "style.png", "--flows", data / "flows", "--size", 32, "--style-size", 64,
            "--batch", 1, "--steps", 2, "--checkpoint-every", 1, *extra]


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(code, err, *words):
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("option, value", [("--lr", "nan"), ("--lr", "inf"), ("--style-weight", "inf"),
                                           ("--temporal-weight", "nan"), ("--tv-weight", "-inf"),
                                           ("--photo-fraction", "nan")])
def test_non_finite_training_numbers_are_refused_before_the_run_starts(data, tmp_path, capsys,
                                                                        option, value):
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, f"{option}={value}"))
    _one_line(code, err, option, "finite")
    assert not (tmp_path / "run").exists()


def test_absurd_crop_size_is_refused_before_memory_is_spent(data, tmp_path, capsys):
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--size", 100000))
    _one_line(code, err, "--size", "at most")


def test_diverged_run_says_its_weights_overflow_float16_and_writes_no_model(data, tmp_path, capsys):
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--lr", "1e6"))
    _one_line(code, err, "no model was written", "float16", "lower --lr")
    assert "corrupt" not in err
    run = tmp_path / "run"
    assert not (run / "run.safetensors").exists() and not (run / "run.json").exists()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2


@pytest.mark.parametrize("bad, message", [("style", "cannot read the style image"),
                                          ("photos", "not a readable image"),
                                          ("flows", "fake.h5")])
def test_overwrite_with_bad_input_leaves_the_existing_run_untouched(data, tmp_path, capsys, bad, message):
    assert _cli(capsys, tmp_path, *_tiny(data))[0] == 0
    before = _snapshot(tmp_path / "run")
    (tmp_path / "bad_photos").mkdir()
    (tmp_path / "bad_photos" / "broken.jpg").write_text("not a picture")
    (tmp_path / "bad_flows").mkdir()
    (tmp_path / "bad_flows" / "fake.h5").write_text("not hdf5")
    changes = {"style": ["--style", data / "fake.jpg"],
               "photos": ["--photos", tmp_path / "bad_photos"],
               "flows": ["--flows", tmp_path / "bad_flows"]}[bad]
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--overwrite", "--lr", "0.5", *changes))
    _one_line(code, err, message)
    assert _snapshot(tmp_path / "run") == before
    code, out, _ = _cli(capsys, tmp_path, "--resume", "--steps", 3)   # the old run still continues
    assert code == 0 and "trained 3 steps" in out


@pytest.mark.parametrize("bad", ["style", "photos"])
def test_run_that_cannot_start_leaves_no_folder_behind(data, tmp_path, capsys, bad):
    (tmp_path / "bad_photos").mkdir()
    (tmp_path / "bad_photos" / "broken.png").write_bytes(b"")
    extra = (["--style", data / "fake.jpg"] if bad == "style"
             else ["--photos", data / "photos", tmp_path / "bad_photos"])
    code, _, err = _cli(capsys, tmp_path / "runs", *_tiny(data, *extra))
    assert code == 2 and err.count("\n") == 1
    assert not (tmp_path / "runs" / "run").exists()


def test_overwrite_replaces_the_old_runs_files(data, tmp_path, capsys):
    assert _cli(capsys, tmp_path, *_tiny(data, "--steps", 3, "--preview-every", 3))[0] == 0
    assert (tmp_path / "run" / "previews" / "step_000003.png").is_file()
    assert _cli(capsys, tmp_path, *_tiny(data, "--overwrite", "--preview-every", 2))[0] == 0
    assert sorted(p.name for p in (tmp_path / "run" / "previews").iterdir()) == ["step_000002.png"]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_resume_of_a_run_that_never_started_or_never_checkpointed_is_one_line(data, tmp_path, capsys):
    code, _, err = _cli(capsys, tmp_path, "--resume", name="ghost")
    _one_line(code, err, "no run 'ghost'", "without --resume")
    assert _cli(capsys, tmp_path, *_tiny(data))[0] == 0
    (tmp_path / "run" / "checkpoint.pt").unlink()
    code, _, err = _cli(capsys, tmp_path, "--resume")
    _one_line(code, err, "before its first checkpoint", "--overwrite")
    code, _, err = _cli(capsys, tmp_path, *_tiny(data, "--resume", "--overwrite"))
    _one_line(code, err, "--resume", "--overwrite")


def test_pickled_or_damaged_checkpoint_is_refused_in_one_line_of_our_own(data, tmp_path, capsys):
    assert _cli(capsys, tmp_path, *_tiny(data))[0] == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    good = checkpoint.read_bytes()
    torch.save({"format": "vidstyle-train-checkpoint/1", "step": 1, "extra": argparse.Namespace(x=1)},
               checkpoint)
    code, _, err = _cli(capsys, tmp_path, "--resume", "--steps", 3)
    _one_line(code, err, "refused", "could run code")
    assert "weights_only" not in err
    for damaged in (b"garbage" * 10, good[: len(good) // 2]):
        checkpoint.write_bytes(damaged)
        with pytest.raises(ConfigError) as caught:
            load_checkpoint(checkpoint)
        assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)


def test_exported_card_names_its_inputs_without_machine_paths(data, tmp_path, capsys):
    code, out, _ = _cli(capsys, tmp_path, *_tiny(data, "--photos", data / "photos"))
    assert code == 0
    weights = tmp_path / "run" / "run.safetensors"
    text = weights.with_suffix(".json").read_text()
    assert str(tmp_path) not in text and str(data) not in text
    card = load_model(weights).card
    assert card.style_image == "style.png"
    assert card.trained["style_sha256"] == hashlib.sha256((data / "style.png").read_bytes()).hexdigest()
    assert card.trained["data"] == ["2 clip(s) (4 frame pairs) in flows", "3 photo(s) in photos"]
    assert "-core CPU" in card.trained["hardware"] and "-core CPU" in card.description
    from safetensors import safe_open
    with safe_open(str(weights), framework="pt") as f:
        assert json.loads(f.metadata()[CARD_KEY]) == json.loads(text)
