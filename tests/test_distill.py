"""Distillation: the student learns the teacher's output, takes over its tone gate, is written as a
model with a card saying where it came from, and a run stops and resumes like a training run."""

import pytest
import torch

from tests.flowfiles import write_training_flows
from vidstyle.errors import ConfigError
from vidstyle.models.net import build_net
from vidstyle.models.zoo import ModelCard, load_model, save_model
from vidstyle.training.data import PairDataset
from vidstyle.training.distill import distill, distill_loss
from vidstyle.training.distillconfig import DistillConfig
from vidstyle.training.runfiles import RunFiles, load_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small toned huang teacher and a tiny flow-file training set."""
    folder = tmp_path_factory.mktemp("distill")
    torch.manual_seed(0)
    net = build_net("huang", channels=(4, 8, 8), res_blocks=1, tone=0.25)
    with torch.no_grad():   # a look far from an untrained network's grey: reddish, no blue
        net.decoder[-1][1].bias.copy_(torch.tensor([1.5, 0.0, -2.0]))
    card = ModelCard("teacher", net.config, "t.jpg", "a test")
    teacher = save_model(net, folder / "teacher.safetensors", card)
    return teacher, write_training_flows(folder / "flows")


def config(setup, tmp_path, **overrides):
    teacher, flows = setup
    values = {"teacher": str(teacher), "name": "student", "flows": [str(flows)], "steps": 40, "batch": 2,
              "size": 32, "lr": 5e-3, "runs_dir": str(tmp_path / "runs"), "threads": 1}
    return DistillConfig(**{**values, **overrides})


def gap(student, teacher, frames):
    with torch.inference_mode():
        return float(distill_loss(student.forward_ungated(frames), teacher.forward_ungated(frames)))


def test_student_moves_toward_the_teacher_and_its_card_says_where_it_came_from(setup, tmp_path):
    cfg = config(setup, tmp_path)
    teacher = load_model(cfg.teacher).net
    frames = torch.stack([PairDataset(cfg.flows, crop=32, seed=9)[i]["frame_t"] for i in range(4)])
    torch.manual_seed(0)
    untrained = build_net("lite", tone=0.25).eval()
    path = distill(cfg, log=lambda *_: None)
    student = load_model(path)
    assert gap(student.net, teacher, frames) < 0.5 * gap(untrained, teacher, frames)
    card = student.card
    assert card.net["name"] == "lite" and card.net["tone"] == 0.25     # the teacher's tone gate
    assert card.style_image == "t.jpg" and "Distilled from teacher" in card.description
    distilled = card.trained["distilled"]
    assert distilled["teacher"] == "teacher" and distilled["steps"] == 40 and "CPU" in distilled["hardware"]


def test_a_run_resumes_to_more_steps_and_refuses_to_start_over_unasked(setup, tmp_path):
    distill(config(setup, tmp_path, steps=4, lr=1e-3), log=lambda *_: None)
    with pytest.raises(ConfigError, match="--resume"):
        distill(config(setup, tmp_path, steps=4), log=lambda *_: None)
    lines = []
    path = distill(config(setup, tmp_path, steps=6, lr=1e-3), resume=True, log=lines.append)
    assert "steps 4..6" in lines[0]
    assert load_model(path).card.trained["distilled"]["steps"] == 6
    run = RunFiles(tmp_path / "runs" / "student")
    assert [r["step"] for r in run.read_log()][-1] == 6
    assert load_checkpoint(run.checkpoint)["step"] == 6


def test_resuming_with_another_teacher_or_size_is_refused(setup, tmp_path):
    distill(config(setup, tmp_path, steps=2), log=lambda *_: None)
    with pytest.raises(ConfigError, match="other settings .size."):
        distill(config(setup, tmp_path, steps=4, size=48), resume=True, log=lambda *_: None)
    path = distill(config(setup, tmp_path, steps=2), overwrite=True, log=lambda *_: None)
    assert [r["step"] for r in RunFiles(path.parent).read_log()] == [2]   # the old run's log is gone


def test_resuming_nothing_is_a_one_line_error(setup, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        distill(config(setup, tmp_path), resume=True, log=lambda *_: None)


@pytest.mark.parametrize("args, message", [
    (["no_such_model", "--name", "x", "--flows", "F"], "no_such_model"),
    (["TEACHER", "--name", "x", "--flows", "F", "--steps", "0"], "--steps must be at least 1"),
    (["TEACHER", "--name", "x", "--flows", "F", "--net", "vgg"], "--net 'vgg'"),
    (["TEACHER", "--name", "x"], "no training data"),
    (["TEACHER", "--name", "x", "--flows", "F", "--channels", "16,32"], "three positive widths"),
    (["TEACHER", "--name", "x", "--flows", "F", "--channels", "16,32,0"], "three positive widths"),
    (["TEACHER", "--name", "x", "--flows", "F", "--net", "huang", "--channels", "8,8,8"], "lite and lite2"),
    (["TEACHER", "--name", "x", "--flows", "F", "--blur", "1.5"], "--blur must be a share in [0, 1]"),
])
def test_command_gives_one_line_errors(setup, tmp_path, capsys, args, message):
    teacher, flows = setup
    args = [str(teacher) if a == "TEACHER" else str(flows) if a == "F" else a for a in args]
    code = run_cli_distill(capsys, *args, "--runs-dir", tmp_path / "runs")
    assert code[0] == 2
    assert message in code[2] and len(code[2].strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "x" / "x.safetensors").exists()


def run_cli_distill(capsys, *args):
    from vidstyle.cli import main

    code = main(["distill", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lite2_model(folder, channels=(8, 24, 64), seed=3):
    torch.manual_seed(seed)
    net = build_net("lite2", channels=channels, tone=0.25)
    return save_model(net, folder / f"init_{'_'.join(map(str, channels))}.safetensors",
                      ModelCard("init", net.config, "t.jpg", "an init"))


def test_a_wider_student_starts_as_its_narrower_init_and_resumes_at_its_width(setup, tmp_path, capsys):
    init = lite2_model(tmp_path)
    cfg = config(setup, tmp_path, net="lite2", init=str(init), channels=[16, 32, 64], steps=1, lr=1e-9)
    path = distill(cfg, log=lambda *_: None)
    student, start = load_model(path), load_model(init)
    assert student.card.net["channels"] == [16, 32, 64]
    frames = torch.rand(2, 3, 32, 48)
    with torch.inference_mode():    # one step at a vanishing learning rate: still the init's picture
        before, after = start.net.forward_ungated(frames), student.net.forward_ungated(frames)
        assert torch.allclose(after, before, atol=1e-3)
    code, out, _ = run_cli_distill(capsys, "--name", "student", "--resume", "--steps", "2", "--runs-dir",
                                   tmp_path / "runs")   # the saved run: its widths come back with it
    assert code == 0 and "steps 1..2" in out
    assert load_model(path).card.net["channels"] == [16, 32, 64]


def test_without_channels_the_student_takes_its_inits_widths_and_keeps_them(setup, tmp_path, capsys):
    init = lite2_model(tmp_path, channels=(16, 24, 64))
    path = distill(config(setup, tmp_path, net="lite2", init=str(init), steps=1), log=lambda *_: None)
    assert load_model(path).card.net["channels"] == [16, 24, 64]
    code, _, err = run_cli_distill(capsys, "--name", "student", "--resume", "--steps", "2", "--runs-dir",
                                   tmp_path / "runs")
    assert code == 0, err
    assert load_model(path).card.net["channels"] == [16, 24, 64]


def test_without_net_the_student_is_its_inits_kind_and_resumes_as_it(setup, tmp_path, capsys):
    init = lite2_model(tmp_path)   # a shipped fast network is lite2: continuing it needs no --net
    code, _, err = run_cli_distill(capsys, setup[0], "--name", "student", "--init", init, "--flows", setup[1],
                                   "--steps", "1", "--batch", "1", "--size", "32", "--feature-weight", "0",
                                   "--runs-dir", tmp_path / "runs", "--threads", "1")
    assert code == 0, err
    path = tmp_path / "runs" / "student" / "student.safetensors"
    assert load_model(path).card.net["name"] == "lite2"
    code, out, err = run_cli_distill(capsys, "--name", "student", "--resume", "--steps", "2", "--runs-dir",
                                     tmp_path / "runs")
    assert code == 0 and "into lite2" in out, err
    assert load_model(path).card.net["name"] == "lite2"


def test_without_net_or_init_the_student_is_lite(setup, tmp_path):
    path = distill(config(setup, tmp_path, steps=1, feature_weight=0), log=lambda *_: None)
    assert load_model(path).card.net["name"] == "lite"


def test_a_student_narrower_than_its_init_is_refused_in_one_line(setup, tmp_path):
    init = lite2_model(tmp_path, channels=(16, 32, 64))
    cfg = config(setup, tmp_path, net="lite2", init=str(init), channels=[8, 24, 64], steps=1)
    with pytest.raises(ConfigError, match=r"not a lite2 network of this shape \(channels \[8, 24, 64\]\)"):
        distill(cfg, log=lambda *_: None)


def test_blur_kernels_are_streaks_or_gaussians_that_keep_the_brightness():
    from vidstyle.training.distill import blur_kernel

    generator = torch.Generator().manual_seed(0)
    kernels = [blur_kernel(generator) for _ in range(40)]
    assert all(torch.isclose(k.sum(), torch.tensor(1.0)) and k.min() >= 0 for k in kernels)
    streaks = [k for k in kernels if int((k > 0).sum()) <= 15]   # a line of pixels, not a disc
    assert 10 <= len(streaks) <= 30
    assert all(int((k > 0).sum()) >= 3 for k in streaks)


def test_blur_takes_a_share_of_the_pairs_and_blurs_both_frames_of_a_pair_alike():
    from vidstyle.training.distill import _blurred

    torch.manual_seed(0)
    pairs = 200
    first = torch.rand(pairs, 3, 24, 24)
    frames = torch.cat([first, first])                 # each pair: the same frame twice
    out = _blurred(frames, 0.3, torch.Generator().manual_seed(1))
    changed = (out[:pairs] - first).abs().flatten(1).amax(1) > 1e-6
    assert 40 <= int(changed.sum()) <= 80
    assert torch.equal(out[:pairs], out[pairs:])       # one kernel for both frames of a pair
    detail = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()   # noqa: E731
    assert detail(out[:pairs][changed]) < 0.7 * detail(first[changed])
    assert torch.equal(_blurred(frames, 0.0, torch.Generator()), frames)


def test_a_blurred_run_resumes_exactly_and_its_card_records_the_blur(setup, tmp_path):
    straight = distill(config(setup, tmp_path / "a", steps=4, blur=0.5), log=lambda *_: None)
    lines = []   # a deadline already passed: the run stops after its first step, then resumes
    distill(config(setup, tmp_path / "b", steps=4, blur=0.5, max_minutes=1e-9), log=lines.append)
    assert "at step 1" in lines[-1]
    resumed = distill(config(setup, tmp_path / "b", steps=4, blur=0.5), resume=True, log=lambda *_: None)
    one, other = load_model(straight), load_model(resumed)
    assert one.card.trained["distilled"]["blur"] == 0.5
    for key, tensor in one.net.state_dict().items():
        assert torch.equal(tensor, other.net.state_dict()[key]), key
    unblurred = load_model(distill(config(setup, tmp_path / "c", steps=4), log=lambda *_: None))
    assert any(not torch.equal(t, unblurred.net.state_dict()[k]) for k, t in one.net.state_dict().items())


def test_photo_fraction_sets_the_share_of_photo_pairs_and_the_card_records_it(setup, tmp_path, monkeypatch):
    import numpy as np

    from vidstyle.io.images import write_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):   # two photos beside 4 video pairs: by count, 1 draw in 3 is a photo
        write_image(photos / f"p{i}.png", np.random.default_rng(i).integers(0, 256, (64, 64, 3), np.uint8))
    drawn = []
    key_for_draw = PairDataset.key_for_draw

    def spy(self, draw):
        key = key_for_draw(self, draw)
        drawn.append(key[0] >= self.num_video)
        return key

    monkeypatch.setattr(PairDataset, "key_for_draw", spy)
    shares = {}
    for fraction in (None, 0.05, 0.9):
        drawn.clear()
        path = distill(config(setup, tmp_path / str(fraction), photos=[str(photos)], steps=30,
                              photo_fraction=fraction), log=lambda *_: None)
        shares[fraction] = sum(drawn) / len(drawn)
        assert load_model(path).card.trained["distilled"]["photo_fraction"] == fraction
    assert shares[0.05] < 0.15 < shares[None] < 0.55 and shares[0.9] > 0.75


def test_a_photo_fraction_outside_0_to_1_is_a_one_line_error(setup, tmp_path, capsys):
    teacher, flows = setup
    code = run_cli_distill(capsys, teacher, "--name", "x", "--flows", flows, "--photo-fraction", "1.5",
                           "--runs-dir", tmp_path / "runs")
    assert code[0] == 2 and "--photo-fraction must be a share in [0, 1]" in code[2]
    assert len(code[2].strip().splitlines()) == 1
