"""Animated and still images as inputs: an animated GIF, WebP or PNG is a clip read frame by frame
at its own frame times; a still picture of any format Pillow reads (AVIF, GIF, PPM, TGA, ...) is a
photo."""

import av
import numpy as np
import pytest
from PIL import Image

from tests.clips import distinct_frames
from tests.testmodel import run_cli
from vidstyle.infer.batch import find_inputs
from vidstyle.infer.photo import is_photo
from vidstyle.io.random_access import read_frames
from vidstyle.io.video import is_clip, iter_timed_frames, probe, variable_rate
from vidstyle.serve.uploads import detect_kind, input_suffix

# Milliseconds each frame shows; the 0 is GIF's "as fast as possible", shown for 100 ms.
DURATIONS_MS = [40, 40, 200, 40, 0, 40, 500, 40]
SHOWN_MS = [100 if d < 20 else d for d in DURATIONS_MS]
STARTS = np.concatenate([[0.0], np.cumsum(SHOWN_MS)[:-1]]) / 1000.0


def _save_animation(path, frames, durations=DURATIONS_MS):
    images = [Image.fromarray(frame) for frame in frames]
    options = {"lossless": True} if path.suffix == ".webp" else {}
    images[0].save(path, save_all=True, append_images=images[1:], duration=list(durations), loop=0,
                   **options)
    return path


@pytest.fixture(scope="module")
def frames():
    return distinct_frames(len(DURATIONS_MS), width=48, height=32)


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_animation_is_a_clip_read_at_its_own_frame_times(tmp_path, frames, suffix):
    path = _save_animation(tmp_path / f"a{suffix}", frames)
    assert is_clip(path) and not is_photo(path)
    info = probe(path)
    assert (info.num_frames, info.size, info.has_audio) == (len(frames), (48, 32), False)
    assert info.duration == pytest.approx(sum(SHOWN_MS) / 1000)
    timed = list(iter_timed_frames(path))
    assert np.allclose([t for t, _ in timed], STARTS)
    decoded = np.stack([frame for _, frame in timed])
    # GIF keeps 256 colours a frame; WebP (lossless) and PNG every level.
    assert np.abs(decoded.astype(int) - frames).mean() < (6 if suffix == ".gif" else 0.01)
    assert variable_rate(path)
    assert np.array_equal(read_frames(path, [5, 1]), decoded[[5, 1]])


def test_start_and_duration_select_an_animations_frames_by_time(tmp_path, frames):
    path = _save_animation(tmp_path / "a.webp", frames)
    timed = list(iter_timed_frames(path, start=0.25, duration=0.3))
    # frames start at 0, .04, .08, .28, .32, .42, .46, .96: those in [0.25, 0.55)
    assert np.allclose([t for t, _ in timed], [0.28, 0.32, 0.42, 0.46])
    assert len(list(iter_timed_frames(path, start=0.25, max_frames=2))) == 2


def test_still_pictures_of_other_formats_are_photos(tmp_path, frames):
    for name in ("still.gif", "still.avif", "still.ppm", "still.tga", "single.png"):
        Image.fromarray(frames[0]).save(tmp_path / name)
        assert is_photo(tmp_path / name) and not is_clip(tmp_path / name), name
    pages = tmp_path / "pages.tif"     # TIFF pages are no animation: the first page is the photo
    Image.fromarray(frames[0]).save(pages, save_all=True, append_images=[Image.fromarray(frames[1])])
    assert is_photo(pages) and not is_clip(pages)


def test_infer_turns_an_animation_into_a_video_and_a_still_avif_into_a_png(capsys, tmp_path, frames,
                                                                           model):
    _save_animation(tmp_path / "sticker.webp", frames)
    Image.fromarray(frames[0]).save(tmp_path / "photo.avif")
    code, out, err = run_cli(capsys, "infer", tmp_path / "sticker.webp", tmp_path / "photo.avif",
                             "--model", model)
    assert code == 0, err
    with av.open(str(tmp_path / "sticker.testnet.mp4")) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    assert np.allclose(times, STARTS, atol=1e-3)
    with Image.open(tmp_path / "photo.testnet.png") as image:
        assert (image.format, image.size) == ("PNG", (48, 32))


def test_a_folder_holds_animations_and_still_pictures_of_every_format(tmp_path, frames):
    _save_animation(tmp_path / "moving.gif", frames)
    Image.fromarray(frames[0]).save(tmp_path / "still.gif")
    Image.fromarray(frames[0]).save(tmp_path / "still.avif")
    (tmp_path / "notes.txt").write_text("not an input")
    items, ignored = find_inputs([tmp_path])
    assert {(item.id, item.kind) for item in items} == {
        ("moving.gif", "video"), ("still.gif", "photo"), ("still.avif", "photo")}
    assert [path.name for path in ignored] == ["notes.txt"]


def test_the_page_takes_an_animation_as_a_video_by_its_content(tmp_path, frames):
    upload = _save_animation(tmp_path / "a.gif", frames).rename(tmp_path / "upload")  # unnamed
    still = tmp_path / "still"
    Image.fromarray(frames[0]).save(still, format="GIF")
    assert (detect_kind(upload), detect_kind(still)) == ("video", "photo")
    assert input_suffix("cat.gif", "video") == ".gif"
    assert input_suffix("cat.avif", "photo") == ".avif"
