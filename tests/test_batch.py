"""Many inputs in one infer run: folders expanded, bad files skipped, summary, exit 1, --shard, --json."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.clips import distinct_frames, make_frame_folder, write_garbage, write_test_clip
from tests.testmodel import run_cli, save_untrained
from vidstyle.batchwork import in_shard
from vidstyle.errors import ConfigError
from vidstyle.infer.batch import Item, find_inputs, is_frame_folder, plan_outputs, take_shard
from vidstyle.infer.engines import StylizerPool
from vidstyle.infer.stylize import EngineConfig
from vidstyle.io.video import probe
from vidstyle.models.net import build_net


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_untrained(tmp_path_factory.mktemp("models"))


def _photo(path, size=(32, 24), exif=None):
    rng = np.random.default_rng(len(str(path)))
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    image.save(path, **({"exif": exif} if exif is not None else {}))
    return path


@pytest.fixture
def library(tmp_path):
    """videos/ (2 clips, one broken, a note), photos/ (2 photos, one in a subfolder), shot/ (frames)."""
    videos, photos = tmp_path / "videos", tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    videos.mkdir()
    write_test_clip(videos / "a.mp4", distinct_frames(3, 32, 24), fps=12)
    write_test_clip(videos / "b.mov", distinct_frames(2, 32, 24), fps=12)
    write_garbage(videos / "broken.mp4")
    (videos / "notes.txt").write_text("not an input")
    _photo(photos / "cat.jpg")
    _photo(photos / "trip" / "beach.png")
    make_frame_folder(tmp_path / "shot", distinct_frames(3, 32, 24))
    return tmp_path


def test_folders_expand_to_videos_photos_and_frame_folders(library):
    items, ignored = find_inputs([library / "videos", library / "photos", library / "shot"])
    assert [(i.id, i.kind) for i in items] == [
        ("a.mp4", "video"), ("b.mov", "video"), ("broken.mp4", "video"),
        ("cat.jpg", "photo"), ("trip/beach.png", "photo"), ("shot", "video")]
    assert ignored == [library / "videos" / "notes.txt"]


def test_numbered_photos_from_a_camera_or_of_mixed_sizes_are_photos_not_frames(tmp_path):
    camera = tmp_path / "camera"
    camera.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "SomeCam"        # Make
    for n in range(3):
        _photo(camera / f"IMG_{n:04d}.jpg", exif=exif)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for n, size in enumerate([(32, 24), (24, 32), (32, 24)]):
        _photo(mixed / f"{n:03d}.png", size=size)
    frames = make_frame_folder(tmp_path / "frames", distinct_frames(3, 32, 24))
    assert not is_frame_folder(camera) and not is_frame_folder(mixed) and is_frame_folder(frames)
    items, _ = find_inputs([camera, mixed])
    assert [i.kind for i in items] == ["photo"] * 6


def test_batch_writes_one_output_per_input_skips_the_bad_one_and_exits_1(capsys, library, model):
    out = library / "styled"
    code, stdout, err = run_cli(capsys, "infer", library / "videos", library / "photos",
                                library / "shot", "--model", model, "-o", f"{out}/")
    assert code == 1
    assert err.strip().splitlines() == [line for line in err.strip().splitlines() if "broken.mp4" in line]
    assert len(err.strip().splitlines()) == 1
    assert probe(out / "a.testnet.mp4").num_frames == 3 and probe(out / "b.testnet.mp4").num_frames == 2
    assert probe(out / "shot.testnet.mp4").num_frames == 3
    assert Image.open(out / "cat.testnet.png").size == (32, 24)
    assert Image.open(out / "trip" / "beach.testnet.png").size == (32, 24)
    assert not (out / "broken.testnet.mp4").exists()
    assert stdout.strip().splitlines()[-1].startswith("5 done, 1 failed, 1 other files ignored; 10 frames")
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_rerun_beside_the_inputs_ignores_its_own_outputs(capsys, library, model):
    for _ in range(2):
        code, stdout, err = run_cli(capsys, "infer", library / "photos", "--model", model)
        assert code == 0, err
    assert "2 done, 0 failed, 2 other files ignored" in stdout
    assert sorted(p.name for p in (library / "photos").rglob("*.png")) == [
        "beach.png", "beach.testnet.png", "cat.testnet.png"]


def test_json_summary_is_machine_readable(capsys, library, model):
    code, stdout, err = run_cli(capsys, "infer", library / "videos", "--model", model, "-o",
                                library / "o", "--json")
    assert code == 1
    summary = json.loads(stdout)
    assert (summary["model"], summary["done"], summary["failed"]) == ("testnet", 2, 1)
    by_name = {r["input"].rsplit("/", 1)[-1]: r for r in summary["results"]}
    assert by_name["a.mp4"]["frames"] == 3 and by_name["a.mp4"]["status"] == "ok"
    assert by_name["a.mp4"]["output"].endswith("a.testnet.mp4") and by_name["a.mp4"]["width"] == 32
    assert by_name["broken.mp4"]["status"] == "failed" and "broken.mp4" in by_name["broken.mp4"]["error"]


def test_json_for_one_input(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "one.mp4", distinct_frames(4, 32, 24), fps=12)
    code, stdout, err = run_cli(capsys, "infer", src, "--model", model, "--json")
    assert code == 0, err
    result = json.loads(stdout)["results"][0]
    assert (result["kind"], result["frames"], result["height"], result["device"]) == ("video", 4, 24, "cpu")


def test_shards_split_the_inputs_stably_and_completely(capsys, tmp_path, model):
    names = ["cat", "dog", "owl", "fox", "elk", "yak"]     # not numbered: a numbered set is a video
    (tmp_path / "in").mkdir()
    for name in names:
        _photo(tmp_path / "in" / f"{name}.png")
    done = []
    for index in range(2):
        out = tmp_path / f"out{index}"
        code, _, err = run_cli(capsys, "infer", tmp_path / "in", "--model", model, "-o", out,
                               "--shard", f"{index}/2")
        assert code == 0, err
        got = sorted(p.name.split(".")[0] for p in out.iterdir())
        assert got == sorted(n for n in names if in_shard(f"{n}.png", (index, 2)))
        done += got
    assert sorted(done) == sorted(names)


def test_two_inputs_with_one_output_name_are_refused_before_any_work(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    items = [Item("x.png", tmp_path / folder / "x.png", "photo") for folder in ("a", "b")]
    with pytest.raises(ConfigError, match="would both be written"):
        plan_outputs(items, "m", tmp_path / "out", batch=True)
    assert not (tmp_path / "out").exists()


def test_no_inputs_in_a_folder_is_one_line_exit_2(capsys, tmp_path, model):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "infer", tmp_path / "empty", "--model", model)
    assert code == 2 and "no videos or photos found" in err


def test_take_shard_uses_precomputes_rule():
    items = [Item(f"{n}.mp4", None, "video") for n in range(20)]
    assert [i.id for i in take_shard(items, (1, 3))] == [i.id for i in items if in_shard(i.id, (1, 3))]


@pytest.mark.slow
def test_compile_notice_comes_once_per_frame_size_and_never_for_eager():
    notes = []
    pool = StylizerPool(build_net("huang"), EngineConfig(device="cpu", compile=None, backend="torch"),
                        notify=notes.append)
    big = 200 * 640 * 360
    pool.get(10, (32, 24))
    assert notes == []
    pool.get(big, (640, 360))
    pool.get(big, (640, 360))
    pool.get(big, (320, 180))
    assert len(notes) == 2 and "compiling" in notes[0] and "once, ~30 s" in notes[0]
    assert "640x360" in notes[0] and "320x180" in notes[1]
    torch._dynamo.reset()
