"""--preserve-color and --strength: the post-step on uint8 frames, and end to end through infer."""

import cv2
import numpy as np
import pytest

from tests.clips import distinct_frames, write_test_clip
from tests.testmodel import run_cli, save_untrained
from vidstyle.errors import ConfigError
from vidstyle.infer.color import ColorOptions, blend, preserve_color
from vidstyle.infer.photo import read_photo
from vidstyle.io.video import iter_frames


def _chroma(rgb):
    return cv2.cvtColor(np.ascontiguousarray(rgb).reshape(-1, rgb.shape[-2], 3),
                        cv2.COLOR_RGB2YCrCb)[..., 1:].astype(np.float64)


def _luma(rgb):
    return cv2.cvtColor(np.ascontiguousarray(rgb).reshape(-1, rgb.shape[-2], 3),
                        cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float64)


def _colourful(height=48, width=64, seed=0):
    """Smooth saturated colours in mid-range brightness (so luma swaps stay inside the RGB gamut)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(60, 200, (4, 4, 3)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_untrained(tmp_path_factory.mktemp("models"))


def test_preserve_color_takes_luma_of_stylized_and_chroma_of_input():
    original = _colourful(seed=1)
    gray_style = np.repeat(_colourful(seed=2).mean(axis=-1, keepdims=True), 3, axis=-1).astype(np.uint8)
    out = preserve_color(original, gray_style)
    assert np.abs(_chroma(out) - _chroma(original)).mean() < 1.5
    assert np.abs(_luma(out) - _luma(gray_style)).mean() < 1.5
    # A grey stylized frame has no colour of its own, so every bit of colour came from the input.
    assert np.abs(_chroma(gray_style) - 128).max() <= 1 and np.abs(_chroma(out) - 128).mean() > 10


def test_preserve_color_works_on_a_batch_like_on_each_frame():
    originals = np.stack([_colourful(seed=s) for s in range(3)])
    styled = np.stack([_colourful(seed=s + 10) for s in range(3)])
    batch = preserve_color(originals, styled)
    assert batch.shape == originals.shape
    for i in range(3):
        assert np.array_equal(batch[i], preserve_color(originals[i], styled[i]))


def test_strength_blends_linearly_between_input_and_stylized():
    original, styled = _colourful(seed=3), _colourful(seed=4)
    assert np.array_equal(blend(original, styled, 0.0), original)
    assert np.array_equal(blend(original, styled, 1.0), styled)
    half = blend(original, styled, 0.5).astype(int)
    assert np.abs(half - (original.astype(int) + styled.astype(int)) / 2).max() <= 0.5 + 1e-9


def test_options_apply_preserve_color_before_strength_and_nothing_by_default():
    original, styled = _colourful(seed=5), _colourful(seed=6)
    assert not ColorOptions().changes_output
    assert np.array_equal(ColorOptions().apply(original, styled), styled)
    both = ColorOptions(preserve_color=True, strength=0.25).apply(original, styled)
    assert np.array_equal(both, blend(original, preserve_color(original, styled), 0.25))


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_outside_0_1_is_refused(strength):
    with pytest.raises(ConfigError, match="strength"):
        ColorOptions(strength=strength)


def test_infer_strength_out_of_range_is_one_line_exit_2(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "a.mp4", distinct_frames(2, 32, 24), fps=12)
    code, _, err = run_cli(capsys, "infer", src, "--model", model, "--strength", "2")
    assert code == 2 and "--strength must be in 0..1" in err and len(err.strip().splitlines()) == 1


def test_infer_video_with_preserve_color_keeps_the_inputs_chroma(capsys, tmp_path, model):
    frames = np.stack([_colourful(seed=s) for s in range(4)])
    src = write_test_clip(tmp_path / "c.mp4", frames, fps=12, lossless=True)
    plain, kept = tmp_path / "plain.mp4", tmp_path / "kept.mp4"
    for out, extra in ((plain, []), (kept, ["--preserve-color"])):
        code, _, err = run_cli(capsys, "infer", src, "--model", model, "-o", out, "--lossless", *extra)
        assert code == 0, err
    got_plain, got_kept = (np.stack(list(iter_frames(p))) for p in (plain, kept))
    assert np.abs(_chroma(got_kept) - _chroma(frames)).mean() < 1.5
    # The untrained network shifts the colours; --preserve-color is what brings them back.
    assert np.abs(_chroma(got_plain) - _chroma(frames)).mean() > 3
    assert np.abs(_luma(got_kept) - _luma(got_plain)).mean() < 1.5


def test_infer_photo_at_strength_0_is_the_input_and_at_half_is_between(capsys, tmp_path, model):
    from PIL import Image
    image = _colourful(40, 56, seed=7)
    Image.fromarray(image).save(tmp_path / "p.png")
    for strength in ("0", "1", "0.5"):
        code, _, err = run_cli(capsys, "infer", tmp_path / "p.png", "--model", model, "--strength",
                               strength, "-o", tmp_path / f"s{strength}.png")
        assert code == 0, err
    zero, one, half = (read_photo(tmp_path / f"s{s}.png").astype(int) for s in ("0", "1", "0.5"))
    assert np.array_equal(zero, image)
    assert np.abs(half - (image + one) / 2).max() <= 1
