"""The vidstyle-flow/1 HDF5 file: round trip, atomic writing, and validation of damaged files."""

import h5py
import numpy as np
import pytest

from vidstyle.errors import FlowFileError
from vidstyle.flow.flowstore import FORMAT, FlowFile, find_flow_files, validate
from vidstyle.flow.flowwriter import FlowFileWriter, write_clip

T, H, W = 4, 24, 32
ATTRS = {"source": "synthetic", "source_size": 0, "source_mtime": 0.0, "fps": 24.0,
         "flow_method": "farneback", "flow_params": {"winsize": 9}, "created": "2026-11-25T00:00:00",
         "vidstyle_version": "test"}


def random_clip(seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    flow_fw = rng.normal(0, 4, (T - 1, H, W, 2)).astype(np.float32)
    flow_bw = rng.normal(0, 4, (T - 1, H, W, 2)).astype(np.float32)
    mask = (rng.random((T - 1, H, W)) > 0.2).astype(np.uint8)
    return frames, flow_fw, flow_bw, mask


@pytest.fixture
def clip_file(tmp_path):
    arrays = random_clip()
    return write_clip(tmp_path / "clip.h5", *arrays, attrs=ATTRS), arrays


def test_round_trip_keeps_frames_exactly_and_flow_to_float16_precision(clip_file):
    path, (frames, flow_fw, flow_bw, mask) = clip_file
    with FlowFile(path) as clip:
        assert (clip.num_frames, clip.num_pairs, clip.height, clip.width) == (T, T - 1, H, W)
        assert clip.attrs["format"] == FORMAT and clip.fps == 24.0
        for t in range(T - 1):
            pair = clip.pair(t)
            np.testing.assert_array_equal(pair.frame_t, frames[t])
            np.testing.assert_array_equal(pair.frame_t1, frames[t + 1])
            np.testing.assert_array_equal(pair.mask, mask[t])
            assert pair.flow_fw.dtype == np.float32
            # float16 keeps 11 significant bits: relative error below 2**-11.
            np.testing.assert_allclose(pair.flow_fw, flow_fw[t], rtol=2**-11, atol=1e-3)
            np.testing.assert_allclose(pair.flow_bw, flow_bw[t], rtol=2**-11, atol=1e-3)


def test_validate_accepts_a_whole_file_and_returns_its_attributes(clip_file):
    path, _ = clip_file
    attrs = validate(path)
    assert attrs["num_frames"] == T and attrs["flow_method"] == "farneback"


def test_writer_leaves_nothing_under_the_final_name_when_interrupted(tmp_path):
    frames, flow_fw, flow_bw, mask = random_clip()
    path = tmp_path / "clip.h5"
    with pytest.raises(RuntimeError):
        with FlowFileWriter(path, num_frames=T, height=H, width=W, attrs=ATTRS) as out:
            out.write_frame(0, frames[0])
            assert len(list(tmp_path.glob("clip.h5.*.tmp"))) == 1 and not path.exists()
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_to_finish_an_incomplete_clip(tmp_path):
    frames, flow_fw, flow_bw, mask = random_clip()
    with pytest.raises(FlowFileError, match="incomplete"):
        with FlowFileWriter(tmp_path / "clip.h5", num_frames=T, height=H, width=W, attrs=ATTRS) as out:
            out.write_frame(0, frames[0])
            out.write_frame(1, frames[1])
    assert list(tmp_path.iterdir()) == []


def test_writer_trims_to_the_frames_actually_decoded(tmp_path):
    frames, flow_fw, flow_bw, mask = random_clip()
    path = tmp_path / "clip.h5"
    with FlowFileWriter(path, num_frames=T + 5, height=H, width=W, attrs=ATTRS) as out:
        for t in range(T):
            out.write_frame(t, frames[t])
            if t:
                out.write_pair(t - 1, flow_fw[t - 1], flow_bw[t - 1], mask[t - 1])
    assert validate(path)["num_frames"] == T


def test_writer_rejects_wrong_shapes_and_out_of_order_frames(tmp_path):
    frames, *_ = random_clip()
    with pytest.raises(FlowFileError, match="shape"):
        with FlowFileWriter(tmp_path / "a.h5", num_frames=T, height=H, width=W, attrs=ATTRS) as out:
            out.write_frame(0, frames[0][:, :-1])
    with pytest.raises(FlowFileError, match="order"):
        with FlowFileWriter(tmp_path / "b.h5", num_frames=T, height=H, width=W, attrs=ATTRS) as out:
            out.write_frame(1, frames[1])
    assert list(tmp_path.iterdir()) == []


def test_validate_rejects_a_truncated_file(clip_file):
    path, _ = clip_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FlowFileError):
        validate(path)


def test_validate_rejects_a_dataset_of_the_wrong_dtype(clip_file):
    path, (frames, *_) = clip_file
    with h5py.File(path, "a") as h5:
        del h5["frames"]
        h5["frames"] = frames.astype(np.float32)
    with pytest.raises(FlowFileError, match="frames"):
        validate(path)


@pytest.mark.parametrize("name", ["flow_fw", "flow_bw"])
def test_validate_rejects_nan_flow(clip_file, name):
    path, _ = clip_file
    with h5py.File(path, "a") as h5:
        h5[name][1, 3, 4, 0] = np.nan
    with pytest.raises(FlowFileError, match="NaN"):
        validate(path)


def test_validate_rejects_missing_attributes_and_foreign_files(clip_file, tmp_path):
    path, _ = clip_file
    with h5py.File(path, "a") as h5:
        del h5.attrs["fps"]
    with pytest.raises(FlowFileError, match="fps"):
        validate(path)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["frames"] = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(FlowFileError, match="not a vidstyle-flow/1 file"):
        validate(foreign)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(FlowFileError, match="HDF5"):
        validate(text)


def test_reader_reopens_after_pickling_for_loader_workers(clip_file):
    import pickle

    path, (frames, *_) = clip_file
    clip = FlowFile(path)
    clip.frame(0)
    copy = pickle.loads(pickle.dumps(clip))
    np.testing.assert_array_equal(copy.frame(2), frames[2])


def test_find_flow_files_lists_folders_and_rejects_empty_ones(clip_file, tmp_path):
    path, _ = clip_file
    assert find_flow_files([tmp_path]) == [path]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FlowFileError, match="no flow files"):
        find_flow_files([empty])
