"""One image reader for training and metrics: upright per EXIF, one resize, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from tests.synthetic import texture
from vidstyle.errors import ConfigError
from vidstyle.evaluate.metrics import Fidelity
from vidstyle.io.images import load_style_image, read_image, resize_longer_side, write_image
from vidstyle.training.setup import setup_device
from vidstyle.training.train import build_loss
from vidstyle.training.trainconfig import TrainConfig

EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6    # the EXIF value a phone writes for a picture taken in portrait


def _rotated_jpeg(path, stored: np.ndarray):
    """Save ``stored`` (H, W, 3) as a JPEG whose EXIF says: turn it 90 degrees clockwise to view."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    return path


@pytest.fixture
def red_left_blue_right(tmp_path):
    """Stored 24 x 40 (H x W), left half red, right half blue; upright it is 40 x 24, red on top."""
    stored = np.zeros((24, 40, 3), np.uint8)
    stored[:, :20, 0] = 255
    stored[:, 20:, 2] = 255
    return _rotated_jpeg(tmp_path / "portrait.jpg", stored)


def test_read_image_turns_an_exif_rotated_jpeg_upright(red_left_blue_right):
    image = read_image(red_left_blue_right)
    assert image.shape == (40, 24, 3) and image.dtype == np.uint8
    top, bottom = image[:18].reshape(-1, 3).mean(0), image[22:].reshape(-1, 3).mean(0)
    assert top[0] > 200 > 50 > top[2] and bottom[2] > 200 > 50 > bottom[0]
    with Image.open(red_left_blue_right) as pil:
        upright = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
    assert np.abs(image.astype(int) - upright).mean() < 3   # decoders round the DCT differently


@pytest.mark.parametrize("long_side, shrinks", [(30, True), (64, False)])
def test_resize_longer_side_keeps_the_aspect(long_side, shrinks):
    image = texture(24, 40, seed=1)
    out = resize_longer_side(image, long_side)
    assert out.shape == (round(24 * long_side / 40), long_side, 3) and out.dtype == np.uint8
    assert (out.shape[1] < 40) == shrinks


@pytest.mark.parametrize("style_size", [32, 72])   # shrinks, enlarges the 40 px image
def test_metrics_style_targets_are_the_training_targets(tmp_path, style_size):
    """The metrics' style loss is the training loss: same pixels in, same Gram matrices out."""
    path = _rotated_jpeg(tmp_path / "style.jpg", texture(24, 40, seed=3))
    config = TrainConfig(style=str(path), style_size=style_size, device="cpu")
    training = build_loss(config, setup_device("cpu")).style_grams
    metrics = Fidelity(read_image(path), style_size=style_size, device="cpu").style_grams
    assert load_style_image(path, style_size).shape[:2] == (style_size, round(24 * style_size / 40))
    assert training.keys() == metrics.keys()
    for name in training:
        assert torch.equal(training[name], metrics[name]), name


def test_read_image_errors_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="style image not found"):
        read_image(tmp_path / "missing.jpg", "style image")
    fake = tmp_path / "notes.jpg"
    fake.write_text("not a picture")
    with pytest.raises(ConfigError, match="cannot read the style image"):
        read_image(fake, "style image")


def test_write_image_round_trips_a_png_and_leaves_nothing_on_failure(tmp_path):
    rgb = texture(16, 24, seed=5)
    write_image(tmp_path / "x.png", rgb)
    assert np.array_equal(read_image(tmp_path / "x.png"), rgb)
    with pytest.raises(ConfigError, match="could not write"):
        write_image(tmp_path / "x.unknownformat", rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
