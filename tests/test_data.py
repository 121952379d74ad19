"""PairDataset: consistent crops, flips and scales of frames, flow and mask; photo pairs; sampling."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.flowfiles import SHIFT, write_translation_clip
from tests.synthetic import texture, translation_pair
from vidstyle.errors import ConfigError, FlowFileError
from vidstyle.flow import optical as flow
from vidstyle.training.data import (
    CameraMotion,
    DrawSampler,
    PairDataset,
    camera_motion_pair,
    flip_pair,
    points_inside,
)


@pytest.fixture
def flow_dir(tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    write_translation_clip(folder / "a.h5", seed=0)
    write_translation_clip(folder / "b.h5", seed=5, shift=(-1.0, 4.0))
    return folder


@pytest.fixture
def photo_dir(tmp_path):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(2):
        cv2.imwrite(str(folder / f"p{k}.png"), cv2.cvtColor(texture(90, 120, seed=10 + k), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def _numpy(item):
    hwc = {k: v.permute(1, 2, 0).numpy() for k, v in item.items()}
    return hwc["frame_t"], hwc["frame_t1"], hwc["flow_bw"], hwc["mask"][..., 0]


def _warp_error(item):
    """Mean |warp(frame_t, flow_bw) - frame_t1| over reliable pixels, and the same without warping."""
    frame_t, frame_t1, flow_bw, mask = _numpy(item)
    valid = mask > 0
    warped = flow.warp(frame_t, flow_bw)
    return np.abs(warped - frame_t1)[valid].mean(), np.abs(frame_t - frame_t1)[valid].mean()


def test_items_have_documented_shapes_types_and_ranges(flow_dir):
    dataset = PairDataset([flow_dir], crop=32)
    assert len(dataset) == dataset.num_video == 4
    item = dataset[3]
    assert set(item) == {"frame_t", "frame_t1", "flow_bw", "mask"}
    assert item["frame_t"].shape == item["frame_t1"].shape == (3, 32, 32)
    assert item["flow_bw"].shape == (2, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert all(v.dtype == torch.float32 for v in item.values())
    assert 0.0 <= float(item["frame_t"].min()) and float(item["frame_t"].max()) <= 1.0
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}


def test_random_crops_and_flips_keep_the_flow_exact(flow_dir):
    """Integer motion and no rescaling: the warp predicts frame t+1 exactly on every reliable pixel,
    whatever crop and flip each draw took."""
    dataset = PairDataset([flow_dir], crop=32, flip=True)
    flipped = 0
    for draw in range(12):
        item = dataset[(draw % len(dataset), draw)]
        error, _ = _warp_error(item)
        assert error < 1e-6
        flipped += float(item["flow_bw"][0].mean()) in (SHIFT[0], -1.0)   # x sign changed by a flip
    assert 0 < flipped < 12


def test_random_scale_multiplies_flow_vectors_and_keeps_frames_consistent(flow_dir):
    dataset = PairDataset([flow_dir / "a.h5"], crop=32, flip=False, scale=(1.5, 1.5))
    item = dataset[0]
    flow_bw = item["flow_bw"][:, item["mask"][0] > 0]
    assert torch.allclose(flow_bw[0], torch.tensor(-SHIFT[0] * 1.5), atol=1e-3)
    assert torch.allclose(flow_bw[1], torch.tensor(-SHIFT[1] * 1.5), atol=1e-3)
    error, unwarped = _warp_error(item)
    assert error < 0.15 * unwarped


def test_frames_smaller_than_the_crop_are_scaled_up(flow_dir):
    dataset = PairDataset([flow_dir], crop=56, scale=None)
    item = dataset[0]
    assert item["frame_t"].shape == (3, 56, 56)
    # 48x64 frames become 56x75: each flow component scales with its own axis.
    assert float(item["flow_bw"][0].abs().max()) == pytest.approx(SHIFT[0] * 75 / 64, rel=1e-3)
    assert float(item["flow_bw"][1].abs().max()) == pytest.approx(abs(SHIFT[1]) * 56 / 48, rel=1e-3)


def test_flip_keeps_flow_consistent_warp_of_flipped_equals_flipped_warp():
    rng = np.random.default_rng(0)
    frame = rng.random((20, 30, 3), dtype=np.float32)
    flow_bw = rng.normal(0, 3, (20, 30, 2)).astype(np.float32)
    mask = np.ones((20, 30), np.uint8)
    flipped_frame, _, flipped_flow, _ = flip_pair(frame, frame, flow_bw, mask)
    assert np.abs(flow.warp(flipped_frame, flipped_flow) - flow.warp(frame, flow_bw)[:, ::-1]).max() < 1e-5


def test_mask_drops_pixels_whose_flow_leaves_the_crop(flow_dir):
    dataset = PairDataset([flow_dir / "a.h5"], crop=32, flip=False)
    _, _, flow_bw, mask = _numpy(dataset[0])
    assert not mask[~points_inside(flow_bw)].any()
    # The picture moved by (+3, -2): frame t+1's left 3 columns and bottom 2 rows were outside frame t.
    assert not mask[:, :3].any() and not mask[-2:, :].any() and mask[:-2, 3:].all()


def test_photo_pair_has_the_exact_flow_of_its_camera_motion():
    photo = texture(120, 160, seed=3)
    rng = np.random.default_rng(1)
    motion = CameraMotion(max_shift=5.0, max_zoom=0.05, max_rotation=3.0)
    frame_t, frame_t1, flow_bw, mask = camera_motion_pair(photo, 64, rng, motion, zoom_range=(1.0, 1.0))
    valid = mask > 0
    assert 0.5 < valid.mean() < 1.0
    warped = flow.warp(frame_t.astype(np.float32), flow_bw)
    error = np.abs(warped - frame_t1)[valid].mean()
    assert error < 0.2 * np.abs(frame_t.astype(np.float32) - frame_t1)[valid].mean()
    assert np.array_equal(valid, points_inside(flow_bw))


def test_photo_pair_without_motion_has_zero_flow_and_equal_frames():
    still = CameraMotion(0.0, 0.0, 0.0)
    rng = np.random.default_rng(0)
    frame_t, frame_t1, flow_bw, mask = camera_motion_pair(texture(80, 80), 48, rng, still)
    assert np.array_equal(frame_t, frame_t1) and np.abs(flow_bw).max() < 1e-9 and mask.all()


def test_photos_are_extra_content_mixed_at_the_asked_fraction(flow_dir, photo_dir):
    dataset = PairDataset([flow_dir], crop=32, photos=[photo_dir], photo_fraction=0.25)
    assert (dataset.num_video, dataset.num_photos) == (4, 2)
    photo_draws = [dataset.key_for_draw(d)[0] >= 4 for d in range(2000)]
    assert np.mean(photo_draws) == pytest.approx(0.25, abs=0.04)
    item = dataset[4]
    assert item["frame_t"].shape == (3, 32, 32) and float(item["mask"].mean()) > 0.5
    only_photos = PairDataset(photos=[photo_dir], crop=32)
    assert len(only_photos) == 2 and only_photos.preview_item()["frame_t"].shape == (3, 32, 32)


def test_same_draw_gives_the_same_item_and_other_draws_differ(flow_dir):
    dataset = PairDataset([flow_dir], crop=32, scale=(0.8, 1.25))
    a, b, c = dataset[(1, 7)], dataset[(1, 7)], dataset[(1, 8)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_sampler_gives_each_rank_its_own_shard_and_resumes_mid_stream(flow_dir):
    dataset = PairDataset([flow_dir], crop=32)

    def draws(sampler, count):
        keys = iter(sampler)
        return [next(keys)[1] for _ in range(count)]

    rank0 = draws(DrawSampler(dataset, batch_size=2, rank=0, world_size=2), 6)
    rank1 = draws(DrawSampler(dataset, batch_size=2, rank=1, world_size=2), 6)
    assert sorted(rank0 + rank1) == list(range(12))
    whole = draws(DrawSampler(dataset, batch_size=2), 10)
    assert draws(DrawSampler(dataset, batch_size=2, start_step=3), 4) == whole[6:]


def test_loader_workers_open_hdf5_themselves_and_give_the_same_batches(flow_dir):
    dataset = PairDataset([flow_dir], crop=32)
    dataset[0]   # the parent has the files open before the workers fork

    def first_batches(workers):
        loader = DataLoader(dataset, batch_size=2, sampler=DrawSampler(dataset, 2), num_workers=workers)
        batches = iter(loader)
        return [next(batches) for _ in range(3)]

    for serial, parallel in zip(first_batches(0), first_batches(2)):
        assert all(torch.equal(serial[k], parallel[k]) for k in serial)


def test_bad_inputs_are_one_line_errors(tmp_path, flow_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlowFileError, match="no flow files"):
        PairDataset([tmp_path / "empty"])
    (tmp_path / "empty" / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(FlowFileError, match="junk.h5"):
        PairDataset([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no such photo folder"):
        PairDataset([flow_dir], photos=[tmp_path / "missing"])
    with pytest.raises(ConfigError, match="crop"):
        PairDataset([flow_dir], crop=4)
    with pytest.raises(ConfigError, match="no training data"):
        PairDataset()


def _clip_with_black_frame_and_cut(path):
    """4 frames: black, a texture, an unrelated texture (a cut), that texture moved; real flows."""
    from tests.flowfiles import ATTRS
    from vidstyle.flow.flowwriter import write_clip

    frames = np.stack([np.zeros((48, 64, 3), np.uint8), texture(48, 64, seed=1), texture(48, 64, seed=2),
                       translation_pair(48, 64, (2.0, 1.0), seed=2).frame_b])
    pairs = [flow.compute_pair(frames[t], frames[t + 1]) for t in range(3)]
    write_clip(path, frames, *(np.stack(p) for p in zip(*pairs)), ATTRS)
    return path


def test_black_frames_are_never_drawn_and_training_on_them_stays_finite(tmp_path):
    import cv2

    from vidstyle.training.data import MIN_CROP_STD
    from vidstyle.training.train import train
    from vidstyle.training.trainconfig import TrainConfig

    clip = _clip_with_black_frame_and_cut(tmp_path / "cut.h5")
    dataset = PairDataset([clip], crop=32, flip=False)
    for draw in range(30):
        item = dataset[dataset.key_for_draw(draw)]
        for key in ("frame_t", "frame_t1"):
            gray = cv2.cvtColor(item[key].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2GRAY)
            assert gray.std() >= MIN_CROP_STD
    cv2.imwrite(str(tmp_path / "style.png"), cv2.cvtColor(texture(64, 64, seed=7), cv2.COLOR_RGB2BGR))
    config = TrainConfig(style=str(tmp_path / "style.png"), flows=[str(clip)], name="cut", steps=12,
                         runs_dir=str(tmp_path / "runs"), batch=1, size=32, style_size=64, lr=1e-2,
                         log_every=1, device="cpu", threads=1)
    result = train(config, progress=False)
    assert all(np.isfinite(v) for v in result.losses.values())


def test_a_dataset_of_constant_frames_only_is_a_clear_error(tmp_path):
    from tests.flowfiles import ATTRS
    from vidstyle.flow.flowwriter import write_clip

    frames = np.zeros((3, 48, 64, 3), np.uint8)
    zeros = np.zeros((2, 48, 64, 2), np.float32)
    write_clip(tmp_path / "black.h5", frames, zeros, zeros, np.ones((2, 48, 64), np.uint8), ATTRS)
    with pytest.raises(ConfigError, match="no usable training pair"):
        PairDataset([tmp_path / "black.h5"], crop=32)[0]


def test_cuts_and_pairs_with_little_reliable_flow_are_never_drawn(tmp_path):
    from vidstyle.flow.flowstore import FlowFile
    from vidstyle.training.data import MIN_VALID_FRACTION

    clip = _clip_with_black_frame_and_cut(tmp_path / "cut.h5")
    infos = [FlowFile(clip).pair_info(t) for t in range(3)]
    # texture 1 -> unrelated texture 2: flagged as a cut or left with almost no reliable flow
    assert infos[1].cut or infos[1].valid_fraction < MIN_VALID_FRACTION
    assert not infos[2].cut and infos[2].valid_fraction > MIN_VALID_FRACTION
    dataset = PairDataset([clip], crop=32, flip=False)
    cut_first = np.asarray(texture(48, 64, seed=1), np.float32) / 255.0
    for draw in range(20):
        item = dataset[dataset.key_for_draw(draw)]
        frame_t = item["frame_t"].permute(1, 2, 0).numpy()
        # every drawn pair is pair 2 (the only usable one): its first frame is texture 2, not texture 1
        assert not any(np.allclose(frame_t, cut_first[y:y + 32, x:x + 32], atol=1e-6)
                       for y in range(17) for x in range(33))


def test_a_photo_whose_name_is_not_utf8_is_read_and_a_broken_one_is_one_line(tmp_path):
    import os

    import cv2

    from vidstyle.training.data import _load_photo

    folder = tmp_path / "photos"
    folder.mkdir()
    picture = texture(40, 60, seed=3)
    name = folder / os.fsdecode(b"caf\xe9.png")     # Latin-1 bytes: what OpenCV's imread crashes on
    ok, data = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    name.write_bytes(data.tobytes())
    assert np.array_equal(_load_photo(str(name), 512), picture)
    broken = folder / os.fsdecode(b"broken\xff.png")
    broken.write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="cannot read the photo"):
        _load_photo(str(broken), 512)
