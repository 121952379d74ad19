"""``vidstyle train --quick``: the warm-start choice, the budget's stop, and bad input leaving nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from tests.clips import distinct_frames, write_garbage, write_test_clip
from tests.testmodel import run_cli
from vidstyle.errors import ConfigError
from vidstyle.models.zoo import load_model
from vidstyle.training.quick import STYLE_BOOST, Budget, QuickConfig, quick_train
from vidstyle.training.vgg import VGG19
from vidstyle.training.warmstart import STYLES_DIR, choose_warm_start, shipped_models

SHIPPED_STYLES = {"the_scream": "munch_the_scream.jpg", "the_wave": "hokusai_great_wave.jpg",
                  "starry_night": "vangogh_starry_night.jpg"}


def _image(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return path


@pytest.mark.parametrize("model", ["the_scream", "the_wave"])
def test_a_shipped_models_own_style_image_picks_that_model(model):
    candidates = [e for e in shipped_models() if e.name in SHIPPED_STYLES]
    style = cv2.cvtColor(cv2.imread(str(STYLES_DIR / SHIPPED_STYLES[model])), cv2.COLOR_BGR2RGB)
    warm = choose_warm_start(style, VGG19(last_layer="relu4_2"), candidates)
    assert warm.entry.name == model
    assert warm.distance == pytest.approx(0.0, abs=1e-6)
    assert [name for name, _ in warm.ranking][0] == model and warm.ranking[1][1] > 0
    assert model in warm.line() and "\n" not in warm.line()


def test_lite_models_and_models_without_their_style_image_are_not_candidates(tmp_path):
    candidates = [e for e in shipped_models() if e.name in ("the_scream", "the_scream_lite", "the_wave")]
    style = cv2.cvtColor(cv2.imread(str(STYLES_DIR / "munch_the_scream.jpg")), cv2.COLOR_BGR2RGB)
    vgg = VGG19(last_layer="relu4_2")
    assert [n for n, _ in choose_warm_start(style, vgg, candidates).ranking] == ["the_scream", "the_wave"]
    with pytest.raises(ConfigError, match="--init"):
        choose_warm_start(style, vgg, candidates, styles_dir=tmp_path)


class FakeClock:
    """Each reading is ``tick`` seconds after the previous one: the budget runs out after a known
    number of readings, however fast the machine."""

    def __init__(self, tick: float):
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def _tiny_config(tmp_path: Path, **kw) -> QuickConfig:
    clip = write_test_clip(tmp_path / "clip.mp4", distinct_frames(6, 64, 48))
    return QuickConfig(style=str(_image(tmp_path / "paint.png", (48, 40))), name="mine", content=[str(clip)],
                       runs_dir=str(tmp_path / "runs"), size=32, batch=1, samples=3, init="the_scream",
                       device="cpu", threads=1, **kw)


def test_the_budget_stops_training_with_a_finished_model(tmp_path):
    clock = FakeClock(tick=1.0)
    config = _tiny_config(tmp_path, max_minutes=0.5, reserve_seconds=5.0, preview_seconds=10.0)
    checked = []
    result = quick_train(config, clock=clock, say=lambda line: None, progress=False,
                         check=lambda net, content: checked.append(1) or {"warping_error_ratio": 1.5})
    assert result.stopped_by == "budget"
    assert 1 <= result.steps < 30
    assert clock.now - 1000.0 >= 25.0 - 1.0     # trained up to the budget less the reserve
    # The model is complete and loads; its card says what the run was.
    loaded = load_model(result.weights)
    assert loaded.card.trained["steps"] == result.steps
    assert loaded.card.trained["quick"]["warm_start"] == "the_scream"
    assert loaded.card.trained["quick"]["stopped_by"] == "budget"
    assert loaded.card.metrics["warping_error_ratio"] == 1.5 and checked == [1]
    # The warm start's tone gate and loss weights, the style weight raised.
    warm = load_model("the_scream").card
    assert loaded.card.net["tone"] == warm.net["tone"]
    assert loaded.card.trained["weights"]["temporal"] == warm.trained["weights"]["temporal"]
    boosted = STYLE_BOOST * warm.trained["weights"]["style"]
    assert loaded.card.trained["weights"]["style"] == pytest.approx(boosted)
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"mine.safetensors", "mine.json", "config.json", "losses.csv", "previews", "quick.json"} <= files
    assert not [p for p in result.run_dir.rglob("*") if ".tmp" in p.name]
    assert len(list((result.run_dir / "previews").glob("step_*.png"))) >= 2
    # Training changed the warm start's weights.
    start = load_model("the_scream").net.state_dict()
    assert any(not torch.equal(v.half(), start[k].half()) for k, v in loaded.net.state_dict().items())


def test_a_budget_spent_before_the_first_step_still_writes_a_model(tmp_path):
    config = _tiny_config(tmp_path, max_minutes=0.01, reserve_seconds=0.0)
    result = quick_train(config, clock=FakeClock(tick=10.0), say=lambda line: None, progress=False)
    assert result.steps == 0 and result.weights.is_file()
    assert json.loads(result.weights.with_suffix(".json").read_text())["trained"]["steps"] == 0


def test_budget_counts_from_the_start_it_is_given():
    clock = FakeClock(tick=0.0)
    budget = Budget(60.0, reserve=10.0, clock=clock, started=clock.now - 20.0)
    assert budget.elapsed() == pytest.approx(20.0)
    assert budget.training_left() == pytest.approx(30.0)
    assert math.isclose(budget.end - budget.start, 60.0)


def _zero_frame_clip(path: Path) -> Path:
    """An mp4 whose header declares an H.264 stream and no frame follows."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
        out.mux(stream.encode(None))
    assert path.is_file()
    return path


# What is wrong -> (option, value, a word the one-line error must hold)
BAD = {
    "style is not an image": lambda tmp: ("--style", write_garbage(tmp / "paint.jpg"), "paint.jpg"),
    "style is 1x1": lambda tmp: ("--style", _image(tmp / "dot.png", (1, 1)), "1x1"),
    "content clip has no frames": lambda tmp: ("--content", _zero_frame_clip(tmp / "empty.mp4"), "empty.mp4"),
    "content is not a video": lambda tmp: ("--content", write_garbage(tmp / "notes.mp4"), "notes.mp4"),
    "name of a shipped model": lambda tmp: ("--name", "starry_night", "shipped"),
}


@pytest.mark.parametrize("bad", BAD)
def test_bad_input_gets_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, bad):
    runs = tmp_path / "runs"
    args = {"--style": _image(tmp_path / "ok.png", (64, 64)), "--name": "mine",
            "--content": write_test_clip(tmp_path / "ok.mp4", distinct_frames(4, 64, 48))}
    option, value, word = BAD[bad](tmp_path)
    args[option] = value
    code, out, err = run_cli(capsys, "train", "--quick", "--runs", runs, "--max-minutes", "0.05",
                             *[str(x) for pair in args.items() for x in pair])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("vidstyle: error:") and word in err
    assert not runs.exists()


def test_quick_refuses_the_options_of_a_full_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--quick", "--style", _image(tmp_path / "p.png", (64, 64)),
                           "--name", "mine", "--flows", str(tmp_path), "--runs", tmp_path / "runs")
    assert code == 2 and "--flows" in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("temporal", [3e7, 0.0])
def test_the_quick_step_runs_the_loss_network_on_frame_t_only(temporal):
    from vidstyle.models.net import build_net
    from vidstyle.training.losses import HybridLoss, LossWeights
    from vidstyle.training.quick import ContentCache, quick_terms

    torch.manual_seed(0)
    net, vgg = build_net("huang"), VGG19(last_layer="relu4_2")
    loss_fn = HybridLoss(vgg, torch.rand(1, 3, 40, 40), LossWeights(temporal=temporal))
    seen = {"net": [], "vgg": []}
    net.register_forward_hook(lambda m, args, out: seen["net"].append(len(args[0])))
    batch = {"frame_t": torch.rand(2, 3, 32, 32), "frame_t1": torch.rand(2, 3, 32, 32),
             "flow_bw": torch.zeros(2, 2, 32, 32), "mask": torch.ones(2, 1, 32, 32)}
    cache = ContentCache(loss_fn)
    targets = cache([5, 7], batch["frame_t"])
    vgg.register_forward_hook(lambda m, args, out: seen["vgg"].append(len(args[0])))
    assert torch.equal(cache([7, 5], batch["frame_t"])["relu4_2"], targets["relu4_2"].flip(0))
    assert seen["vgg"] == []                                  # both were cached: no VGG pass
    terms = quick_terms(net, loss_fn, batch, targets, (3e7, 4.0, 0.02))
    terms["total"].backward()
    assert seen["vgg"] == [2]                                 # the outputs of frames t, nothing else
    assert seen["net"] == ([4, 2] if temporal else [2, 2])    # both frames (or t alone), then compound
    assert (float(terms["temporal"].detach()) > 0) == (temporal > 0)
    assert all(torch.isfinite(terms[k]) for k in terms)


def test_a_second_run_of_a_busy_name_is_refused_and_leaves_the_first_ones_folder_alone(tmp_path):
    from vidstyle.fsutil import hold_lock

    config = _tiny_config(tmp_path, max_minutes=0.01, reserve_seconds=0.0)
    folder = Path(config.runs_dir) / config.name
    folder.mkdir(parents=True)
    (folder / "losses.csv").write_text("step,loss\n1,0.5\n")      # the other run's log
    with hold_lock(folder / ".lock") as mine:                      # the other run, holding the folder
        assert mine
        with pytest.raises(ConfigError, match="'mine' is busy"):
            quick_train(config, clock=FakeClock(tick=10.0), say=lambda line: None, progress=False)
        assert (folder / "losses.csv").read_text() == "step,loss\n1,0.5\n"
        assert not (folder / "config.json").exists() and not (folder / "mine.safetensors").exists()
    result = quick_train(config, clock=FakeClock(tick=10.0), say=lambda line: None, progress=False)
    assert result.weights.is_file() and not (folder / ".lock").exists()
