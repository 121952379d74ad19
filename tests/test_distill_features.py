"""Distillation's extra terms: the feature term (the teacher's VGG-19 Gram matrices on the student's
output), the style term (the style image's), the content term (the teacher's feature maps), the
layout term (the teacher's output averaged over blocks), the temporal term (the student's warping
error over the teacher's), and --init (a run that continues a shipped student instead of starting
from random weights)."""

import json

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tests.flowfiles import write_training_flows
from vidstyle.errors import ConfigError
from vidstyle.models.net import build_net
from vidstyle.models.zoo import ModelCard, load_model, save_model
from vidstyle.training.distill import (
    content_error,
    distill,
    feature_loss,
    gram_error,
    layout_error,
    target_grams,
    temporal_ratio,
)
from vidstyle.training.distillconfig import DistillConfig
from vidstyle.training.losses import STYLE_LAYERS
from vidstyle.training.vgg import VGG19


@pytest.fixture(scope="module")
def vgg():
    return VGG19(last_layer=STYLE_LAYERS[-1])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small huang teacher, a lite student saved as a model, and a tiny flow-file training set."""
    folder = tmp_path_factory.mktemp("distill_features")
    torch.manual_seed(0)
    teacher = build_net("huang", channels=(4, 8, 8), res_blocks=1, tone=0.25)
    student = build_net("lite", tone=0.25)
    saved = [save_model(net, folder / f"{name}.safetensors", ModelCard(name, net.config, "t.jpg"))
             for name, net in (("teacher", teacher), ("start", student))]
    return (*saved, write_training_flows(folder / "flows"))


def config(setup, tmp_path, **overrides):
    teacher, _, flows = setup
    values = {"teacher": str(teacher), "name": "student", "flows": [str(flows)], "steps": 2, "batch": 2,
              "size": 32, "lr": 1e-3, "runs_dir": str(tmp_path / "runs"), "threads": 1}
    return DistillConfig(**{**values, **overrides})


def one_step_without_and_with(setup, tmp_path, term: str, **extra):
    """Two one-step runs from the same start on the same data, ``term`` at 0 and at 5 (the feature
    term off in both): the two students, and the largest difference between their weights."""
    _, start, _ = setup
    runs = [distill(config(setup, tmp_path / name, steps=1, init=str(start), feature_weight=0.0,
                           **{term: weight}, **extra), log=lambda *_: None)
            for name, weight in (("without", 0.0), ("with", 5.0))]
    without, with_term = (load_model(path) for path in runs)
    gap = max(float((a.float() - b.float()).abs().max())
              for a, b in zip(without.net.state_dict().values(), with_term.net.state_dict().values()))
    return without, with_term, gap


def stripes(period: int) -> torch.Tensor:
    """(1, 3, 64, 64) vertical black and white stripes, ``period`` pixels wide each."""
    x = (torch.arange(64) // period % 2).float()
    return x.expand(1, 3, 64, 64).clone()


def test_feature_loss_is_zero_for_the_teachers_texture_and_grows_as_it_blurs(vgg):
    sharp = stripes(2)
    blurred = [F.avg_pool2d(sharp, k, stride=1, padding=k // 2, count_include_pad=False) for k in (3, 5)]
    with torch.no_grad():
        losses = [float(feature_loss(vgg, s, sharp)) for s in (sharp, *blurred)]
    assert losses[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 < losses[1] < losses[2]


def test_a_step_on_the_feature_loss_brings_the_students_texture_closer(vgg):
    teacher_out = stripes(2)
    student_out = F.avg_pool2d(teacher_out, 5, stride=1, padding=2, count_include_pad=False)
    student_out.requires_grad_(True)
    before = feature_loss(vgg, student_out, teacher_out)
    before.backward()
    with torch.no_grad():
        after = feature_loss(vgg, student_out - 0.1 * student_out.grad / student_out.grad.abs().max(),
                             teacher_out)
    assert float(after) < float(before.detach())


def test_init_starts_from_the_given_model_and_the_card_records_it(setup, tmp_path):
    _, start, _ = setup
    path = distill(config(setup, tmp_path, steps=1, lr=1e-7, init=str(start), feature_weight=0.5),
                   log=lambda *_: None)
    result, begun = load_model(path), load_model(start)
    gaps = [float((a - b).abs().max()) for a, b in zip(result.net.state_dict().values(),
                                                      begun.net.state_dict().values())]
    assert max(gaps) < 1e-3    # one step at lr 1e-7 from the init, in float16
    distilled = result.card.trained["distilled"]
    assert distilled["init"] == "start" and distilled["feature_weight"] == 0.5   # the name, not the path
    assert "before" not in distilled            # the init was not itself distilled


def test_a_student_distilled_on_from_a_distilled_model_keeps_its_history(setup, tmp_path):
    _, start, _ = setup
    first = distill(config(setup, tmp_path, steps=1, init=str(start), feature_weight=0, name="first"),
                    log=lambda *_: None)
    second = distill(config(setup, tmp_path, steps=2, init=str(first), temporal_weight=0.5, name="second"),
                     log=lambda *_: None)
    distilled = load_model(second).card.trained["distilled"]
    assert (distilled["init"], distilled["steps"], distilled["temporal_weight"]) == ("first", 2, 0.5)
    before = distilled["before"]                 # the first run's record, whole
    assert (before["init"], before["steps"], before["feature_weight"]) == ("start", 1, 0)
    assert str(tmp_path) not in json.dumps(distilled)   # no machine path travels in the card


def test_a_lite2_student_starts_from_a_lite_model_with_its_norms_folded(setup, tmp_path):
    _, start, _ = setup
    path = distill(config(setup, tmp_path, steps=1, lr=1e-7, init=str(start), net="lite2"),
                   log=lambda *_: None)
    result, begun = load_model(path), load_model(start)
    assert result.card.net["name"] == "lite2"
    ours, theirs = result.net.state_dict(), begun.net.state_dict()
    # a depthwise convolution, which feeds no norm, is the init's; a folded one was rescaled
    assert float((ours["residuals.0.body.0.weight"] - theirs["residuals.0.body.0.weight"]).abs().max()) < 1e-3
    assert float((ours["residuals.0.body.1.weight"] - theirs["residuals.0.body.1.weight"]).abs().max()) > 1e-2


def test_init_from_another_network_is_a_one_line_error(setup, tmp_path):
    teacher, _, _ = setup
    refused = r"--init .*: a huang network, and the student is lite \(--net huang"
    with pytest.raises(ConfigError, match=refused):
        distill(config(setup, tmp_path, init=str(teacher)), log=lambda *_: None)
    with pytest.raises(ConfigError, match="--init .*: a huang network, and the student is lite2"):
        distill(config(setup, tmp_path, init=str(teacher), net="lite2"), log=lambda *_: None)


def test_a_negative_feature_weight_is_refused(setup, tmp_path):
    with pytest.raises(ConfigError, match="--feature-weight"):
        config(setup, tmp_path, feature_weight=-1.0).check()


def pair_outputs(flicker: float, seed: int = 1) -> torch.Tensor:
    """(2, 3, 32, 32): a frame's output and the next one's, which differ by noise of size ``flicker``
    (the scene does not move, so the warp is the identity)."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.rand(1, 3, 32, 32, generator=generator)
    return torch.cat([first, first + flicker * torch.randn(1, 3, 32, 32, generator=generator)])


STILL_FLOW, ALL_RELIABLE = torch.zeros(1, 2, 32, 32), torch.ones(1, 1, 32, 32)


def test_temporal_ratio_is_one_for_the_teachers_flicker_and_tracks_the_students():
    teacher = pair_outputs(0.1)
    ratios = [float(temporal_ratio(pair_outputs(flicker), teacher, STILL_FLOW, ALL_RELIABLE))
              for flicker in (0.1, 0.05, 0.2)]
    assert ratios[0] == pytest.approx(1.0, rel=1e-5)
    assert ratios[1] == pytest.approx(0.25, rel=1e-5) and ratios[2] == pytest.approx(4.0, rel=1e-5)


def test_temporal_ratio_ignores_pixels_the_mask_leaves_out():
    teacher, student = pair_outputs(0.1), pair_outputs(0.1)
    student[1, :, :, :16] += 1.0          # the student flickers badly, but only on the left half
    right_only = ALL_RELIABLE.clone()
    right_only[..., :16] = 0
    assert float(temporal_ratio(student, teacher, STILL_FLOW, right_only)) == pytest.approx(1.0, rel=1e-5)
    assert float(temporal_ratio(student, teacher, STILL_FLOW, ALL_RELIABLE)) > 10


def test_a_step_on_the_temporal_ratio_steadies_the_student():
    teacher, student = pair_outputs(0.1), pair_outputs(0.2).requires_grad_(True)
    before = temporal_ratio(student, teacher, STILL_FLOW, ALL_RELIABLE)
    before.backward()
    assert teacher.grad is None                # the teacher's warping error is only a reference
    with torch.no_grad():
        after = temporal_ratio(student - 0.05 * student.grad / student.grad.abs().max(), teacher,
                               STILL_FLOW, ALL_RELIABLE)
    assert float(after) < float(before.detach())


def test_the_temporal_weight_changes_the_step_and_the_card_records_it(setup, tmp_path):
    plain, steady, gap = one_step_without_and_with(setup, tmp_path, "temporal_weight")
    assert gap > 0                         # same data, same start: only the temporal term differs
    assert steady.card.trained["distilled"]["temporal_weight"] == 5.0
    assert plain.card.trained["distilled"]["temporal_weight"] == 0.0


def test_a_negative_temporal_weight_is_refused(setup, tmp_path):
    with pytest.raises(ConfigError, match="--temporal-weight"):
        config(setup, tmp_path, temporal_weight=-0.5).check()


def test_gram_error_against_one_image_is_zero_for_it_and_grows_as_the_texture_blurs(vgg):
    painting = target_grams(vgg, stripes(2))           # (1, C, C): one target for every image of a batch
    sharp = stripes(2).expand(2, 3, 64, 64)
    blurred = [F.avg_pool2d(sharp, k, stride=1, padding=k // 2, count_include_pad=False) for k in (3, 5)]
    with torch.no_grad():
        errors = [float(gram_error(vgg(x, STYLE_LAYERS), painting)) for x in (sharp, *blurred)]
    assert errors[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 < errors[1] < errors[2]


def test_a_step_on_the_style_term_brings_the_students_texture_toward_the_painting(vgg):
    painting = target_grams(vgg, stripes(2))
    student_out = F.avg_pool2d(stripes(2), 5, stride=1, padding=2, count_include_pad=False)
    student_out.requires_grad_(True)
    before = gram_error(vgg(student_out, STYLE_LAYERS), painting)
    before.backward()
    with torch.no_grad():
        step = student_out - 0.1 * student_out.grad / student_out.grad.abs().max()
        after = gram_error(vgg(step, STYLE_LAYERS), painting)
    assert float(after) < float(before.detach())


def test_the_style_weight_changes_the_step_and_the_card_records_it(setup, tmp_path):
    image = tmp_path / "painting.png"
    cv2.imwrite(str(image), (np.indices((48, 64)).sum(0) % 7 * 36).astype(np.uint8)[..., None].repeat(3, 2))
    plain, painted, gap = one_step_without_and_with(setup, tmp_path, "style_weight", style=str(image))
    assert gap > 0                         # same data, same start: only the style term differs
    distilled = painted.card.trained["distilled"]
    assert distilled["style_weight"] == 5.0 and distilled["style"] == "painting.png"
    assert plain.card.trained["distilled"]["style_weight"] == 0.0


def test_the_style_term_without_the_teachers_painting_asks_for_one(setup, tmp_path):
    # the teacher's card names t.jpg, which is not among the shipped style images
    with pytest.raises(ConfigError, match="t.jpg.*--style IMAGE"):
        distill(config(setup, tmp_path, style_weight=1.0), log=lambda *_: None)
    assert not (tmp_path / "runs" / "student").exists()


@pytest.mark.parametrize("option, value, message", [("style_weight", -1.0, "--style-weight"),
                                                    ("style", "missing.png", "not found: missing.png")])
def test_a_bad_style_term_is_a_one_line_error(setup, tmp_path, option, value, message):
    overrides = {"style_weight": 1.0, option: value}
    with pytest.raises(ConfigError, match=message):
        distill(config(setup, tmp_path, **overrides), log=lambda *_: None)


def blob(x0: int) -> torch.Tensor:
    """(1, 3, 64, 64) a white square 24 px wide at column ``x0`` on stripes of period 2."""
    image = stripes(2)
    image[..., 20:44, x0:x0 + 24] = 1.0
    return image


def test_content_error_sees_where_things_are_which_the_gram_terms_do_not(vgg):
    here, there = blob(8), blob(32)            # the same square, moved: the same texture statistics
    with torch.no_grad():
        f_here, f_there = vgg(here, STYLE_LAYERS), vgg(there, STYLE_LAYERS)
        gram_gap = float(gram_error(f_there, target_grams(vgg, here)))
        content_gap = float(content_error(f_there, f_here))
    assert float(content_error(f_here, f_here)) == pytest.approx(0.0, abs=1e-6)
    assert content_gap > 10 * gram_gap and content_gap > 0.05


def test_a_step_on_the_content_term_brings_the_student_toward_the_teachers_picture(vgg):
    teacher_out = blob(8)
    student_out = stripes(2).requires_grad_(True)     # the texture without the square
    with torch.no_grad():
        target = vgg(teacher_out, STYLE_LAYERS)
    before = content_error(vgg(student_out, STYLE_LAYERS), target)
    before.backward()
    with torch.no_grad():
        step = student_out - 0.1 * student_out.grad / student_out.grad.abs().max()
        after = content_error(vgg(step, STYLE_LAYERS), target)
        inside = float((step - student_out)[..., 20:44, 8:32].mean())
    assert float(after) < float(before.detach()) and inside > 0   # the step lightens where the square is


def test_the_content_weight_changes_the_step_and_the_card_records_it(setup, tmp_path):
    plain, held, gap = one_step_without_and_with(setup, tmp_path, "content_weight")
    assert gap > 0                         # same data, same start: only the content term differs
    assert held.card.trained["distilled"]["content_weight"] == 5.0
    assert plain.card.trained["distilled"]["content_weight"] == 0.0
    with pytest.raises(ConfigError, match="--content-weight"):
        config(setup, tmp_path, content_weight=-1.0).check()


def test_layout_error_holds_light_and_colour_place_by_place_but_not_the_texture_within_a_block():
    here = blob(8)
    shifted = torch.roll(stripes(2), 1, dims=-1)          # the texture moved by one pixel: each
    shifted[..., 20:44, 8:32] = 1.0                        # 8x8 block's mean is the same
    assert float(layout_error(here, here)) == pytest.approx(0.0, abs=1e-7)
    assert float(layout_error(shifted, here)) == pytest.approx(0.0, abs=1e-6)
    assert float((shifted - here).abs().mean()) > 0.3      # while the pixels differ nearly everywhere
    moved = blob(32)                                       # the square elsewhere: the blocks see it
    assert float(layout_error(moved, here)) > 0.1
    darker = here * 0.8                                    # a subject drawn darker: the blocks see it
    assert float(layout_error(darker, here)) == pytest.approx(0.2 * float(here.mean()), rel=1e-4)


def test_the_layout_weight_changes_the_step_and_the_card_records_it(setup, tmp_path):
    plain, held, gap = one_step_without_and_with(setup, tmp_path, "layout_weight")
    assert gap > 0
    assert held.card.trained["distilled"]["layout_weight"] == 5.0
    assert plain.card.trained["distilled"]["layout_weight"] == 0.0
    with pytest.raises(ConfigError, match="--layout-weight"):
        config(setup, tmp_path, layout_weight=-1.0).check()
