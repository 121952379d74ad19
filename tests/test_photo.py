"""Photos through infer: upright (EXIF), same size, PNG/JPEG/WebP by suffix, atomic, bad input."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.clips import distinct_frames, write_garbage, write_test_clip
from tests.testmodel import run_cli, save_untrained
from vidstyle.infer.photo import read_photo, write_photo
from vidstyle.infer.stylize import EngineConfig, Stylizer
from vidstyle.models.zoo import load_model

ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_untrained(tmp_path_factory.mktemp("models"))


def _picture(height=24, width=40):
    """uint8 RGB with a distinct top-left corner, so a turn is visible."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), 0 * x + 90], -1).astype(np.uint8)
    image[:4, :4] = (255, 0, 0)
    return image


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_exif_orientation_is_applied_when_reading(tmp_path):
    stored = _picture()
    exif = Image.Exif()
    exif[ORIENTATION] = 6          # "rotate 90 CW to display", as a phone held upright writes
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    upright = read_photo(tmp_path / "phone.png")
    assert upright.shape == (40, 24, 3)
    assert np.array_equal(upright, np.rot90(stored, k=-1))


def test_photo_gives_png_of_same_size_named_after_the_model(capsys, tmp_path, model):
    Image.fromarray(_picture(25, 41)).save(tmp_path / "odd.jpg", quality=95)
    code, out, err = run_cli(capsys, "infer", tmp_path / "odd.jpg", "--model", model)
    output = tmp_path / "odd.testnet.png"
    assert code == 0, err
    assert str(output) in out and "1 frame, 41x25" in out
    with Image.open(output) as image:
        assert (image.format, image.size) == ("PNG", (41, 25))
    assert _leftovers(tmp_path) == []


def test_photo_output_is_the_network_on_the_upright_picture(capsys, tmp_path, model):
    stored = _picture()
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    Image.fromarray(stored).save(tmp_path / "turned.png", exif=exif)
    code, _, err = run_cli(capsys, "infer", tmp_path / "turned.png", "--model", model, "-o",
                           tmp_path / "out.png")
    assert code == 0, err
    stylizer = Stylizer(load_model(model).net, EngineConfig(device="cpu", compile=False, threads=1))
    expected = stylizer(np.rot90(stored)[None].copy())[0]
    assert np.array_equal(read_photo(tmp_path / "out.png"), expected)


@pytest.mark.parametrize("suffix,fmt", [(".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"),
                                        (".PNG", "PNG")])
def test_output_format_follows_the_suffix(capsys, tmp_path, model, suffix, fmt):
    Image.fromarray(_picture()).save(tmp_path / "in.png")
    out = tmp_path / f"styled{suffix}"
    code, _, err = run_cli(capsys, "infer", tmp_path / "in.png", "--model", model, "-o", out)
    assert code == 0, err
    with Image.open(out) as image:
        assert (image.format, image.size) == (fmt, (40, 24))


def test_max_size_and_side_by_side_apply_to_photos(capsys, tmp_path, model):
    Image.fromarray(_picture(24, 40)).save(tmp_path / "in.png")
    out = tmp_path / "cmp.png"
    code, _, err = run_cli(capsys, "infer", tmp_path / "in.png", "--model", model, "-o", out,
                           "--max-size", "20", "--side-by-side")
    assert code == 0, err
    got = read_photo(out)
    assert got.shape == (12, 40, 3)
    assert np.abs(got[:, :20].astype(int) - read_photo(tmp_path / "in.png")[::2, ::2]).mean() < 8


@pytest.mark.parametrize("make,output,message", [
    (lambda d: write_garbage(d / "text.jpg"), "o.png", "cannot read photo"),
    (lambda d: d / "missing.jpg", "o.png", "not found"),
    (lambda d: Image.fromarray(_picture()).save(d / "p.png") or d / "p.png", "o.mp4",
     "a photo is written as .png, .jpg or .webp"),
    (lambda d: Image.fromarray(_picture()).save(d / "p.png") or d / "p.png", "nope/o.png",
     "does not exist"),
])
def test_bad_photo_or_output_is_one_line_exit_2_and_no_file(capsys, tmp_path, model, make, output,
                                                            message):
    src = make(tmp_path)
    code, _, err = run_cli(capsys, "infer", src, "--model", model, "-o", tmp_path / output)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / output).exists() and _leftovers(tmp_path) == []


def test_a_video_with_a_photo_output_name_is_refused(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "v.mp4", distinct_frames(2, 32, 24), fps=12)
    code, _, err = run_cli(capsys, "infer", src, "--model", model, "-o", tmp_path / "v.png")
    assert code == 2 and "is a video" in err and not (tmp_path / "v.png").exists()


def test_failed_write_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    def broken_save(self, fp, format=None, **params):
        open(fp, "wb").write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(Exception, match="disk full"):
        write_photo(tmp_path / "x.png", _picture())
    assert list(tmp_path.iterdir()) == []


# --- HEIC/HEIF (phones' photos), read with the optional pillow-heif ---------------------------------

def test_heic_photo_gives_a_png_of_the_same_size_and_its_picture(capsys, tmp_path, model):
    pillow_heif = pytest.importorskip("pillow_heif")
    stored = _picture(24, 40)
    pillow_heif.from_pillow(Image.fromarray(stored)).save(tmp_path / "phone.HEIC", quality=-1)
    assert np.abs(read_photo(tmp_path / "phone.HEIC").astype(int) - stored).mean() < 4
    code, out, err = run_cli(capsys, "infer", tmp_path / "phone.HEIC", "--model", model)
    assert code == 0, err
    with Image.open(tmp_path / "phone.testnet.png") as image:
        assert (image.format, image.size) == ("PNG", (40, 24))


def test_heic_without_pillow_heif_is_one_line_naming_the_extra(tmp_path, model):
    photo = tmp_path / "IMG_0001.heic"     # a HEIF header is all the check reads
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    script = ("import sys; sys.modules['pillow_heif'] = None\n"   # as if it were not installed
              "from vidstyle.cli import main\n"
              f"sys.exit(main(['infer', {str(photo)!r}, '--model', {str(model)!r}, '-q']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f'vidstyle: error: {photo}: reading HEIC/HEIF photos needs pillow-heif: pip install "vidstyle[heic]"']
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_0001.heic"]
