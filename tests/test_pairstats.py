"""Per-pair statistics in flow files: valid fraction, scene cuts, frame contrast; old files still read."""

import cv2
import h5py
import numpy as np
import pytest

from tests.clips import write_test_clip
from tests.synthetic import moving_square_clip, texture
from vidstyle.cli import main
from vidstyle.errors import FlowFileError
from vidstyle.flow.flowstore import FlowFile, validate
from vidstyle.flow.flowwriter import FlowFileWriter
from vidstyle.flow.optical import compute_pair
from vidstyle.flow.pairstats import FLAT_STD, PairInfo
from vidstyle.flow.precompute import FlowJob, run_batch

H, W = 72, 96
ATTRS = {"source": "synthetic", "source_size": 0, "source_mtime": 0.0, "fps": 24.0,
         "flow_method": "farneback", "flow_params": {}, "created": "test", "vidstyle_version": "test"}


def store(path, frames):
    """Write ``frames`` (T, H, W, 3) as a flow file with flows computed as precompute does."""
    with FlowFileWriter(path, num_frames=len(frames), height=H, width=W, attrs=ATTRS) as out:
        for t, frame in enumerate(frames):
            out.write_frame(t, frame)
            if t:
                out.write_pair(t - 1, *compute_pair(frames[t - 1], frame))
    return path


def cuts(path):
    with FlowFile(path) as clip:
        return [t for t in range(clip.num_pairs) if clip.pair_info(t).cut]


def moving(seed, frames=4, start=0):
    """A textured square drifting over a textured background, frames ``start`` .. ``start+frames-1``."""
    return moving_square_clip(start + frames, H, W, velocity=(2.0, 1.0), seed=seed)[start:]


def test_a_hard_cut_between_two_unrelated_scenes_is_flagged_and_only_there(tmp_path):
    frames = np.concatenate([moving(seed=0), moving(seed=7)])   # pair 3 -> 4 jumps to another scene
    assert cuts(store(tmp_path / "cut.h5", frames)) == [3]


def test_smooth_motion_a_still_clip_and_a_slow_fade_have_no_cuts(tmp_path):
    still = np.stack([texture(H, W, seed=3)] * 5)
    gains = np.linspace(1.0, 0.25, 8)                          # fade towards black over 8 frames
    fade = np.stack([np.rint(g * texture(H, W, seed=4)).astype(np.uint8) for g in gains])
    for name, frames in {"moving": moving(seed=1, frames=8), "still": still, "fade": fade}.items():
        assert cuts(store(tmp_path / f"{name}.h5", frames)) == [], name


def test_a_black_frame_before_the_picture_is_flat_and_its_pair_a_cut(tmp_path):
    frames = np.concatenate([np.zeros((1, H, W, 3), np.uint8), moving(seed=2, frames=3)])
    path = store(tmp_path / "black.h5", frames)
    with FlowFile(path) as clip:
        first, second = clip.pair_info(0), clip.pair_info(1)
    assert first.cut and not second.cut
    assert first.std_t < 1e-6 < FLAT_STD < first.std_t1


def test_stored_statistics_match_the_mask_and_the_frames(tmp_path):
    frames = moving(seed=5, frames=4)
    path = store(tmp_path / "clip.h5", frames)
    with FlowFile(path) as clip:
        for t in range(clip.num_pairs):
            info = clip.pair_info(t)
            assert isinstance(info, PairInfo)
            assert info.valid_fraction == pytest.approx(clip.pair(t).mask.mean(), abs=1e-6)
            # Independent luma: OpenCV's own grey conversion (rounded to uint8, so within 1 level).
            for frame, std in ((frames[t], info.std_t), (frames[t + 1], info.std_t1)):
                grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) / 255.0
                assert std == pytest.approx(grey.std(), abs=1 / 255)
    with h5py.File(path) as h5:
        assert h5["valid_fraction"].dtype == np.float32 and h5["valid_fraction"].shape == (3,)
        assert h5["cut"].dtype == np.uint8 and h5["frame_std"].shape == (4,)


def test_files_without_the_statistics_still_validate_and_give_the_same_pair_info(tmp_path):
    frames = np.concatenate([moving(seed=0, frames=3), moving(seed=9, frames=2)])
    path = store(tmp_path / "clip.h5", frames)
    with FlowFile(path) as clip:
        stored = [clip.pair_info(t) for t in range(clip.num_pairs)]
    with h5py.File(path, "a") as h5:     # as written before the statistics existed
        for name in ("valid_fraction", "cut", "frame_std"):
            del h5[name]
    validate(path)
    with FlowFile(path) as clip:
        recomputed = [clip.pair_info(t) for t in range(clip.num_pairs)]
    assert [i.cut for i in recomputed] == [i.cut for i in stored] == [False, False, True, False]
    for old, new in zip(stored, recomputed):
        assert new.valid_fraction == pytest.approx(old.valid_fraction, abs=1e-6)
        assert (new.std_t, new.std_t1) == pytest.approx((old.std_t, old.std_t1), abs=1e-6)


def test_validate_rejects_statistics_of_the_wrong_length_or_range(tmp_path):
    path = store(tmp_path / "clip.h5", moving(seed=1, frames=3))
    with h5py.File(path, "a") as h5:
        h5["cut"][0] = 7
    with pytest.raises(FlowFileError, match="out of range"):
        validate(path)
    with h5py.File(path, "a") as h5:
        del h5["frame_std"]
        h5["frame_std"] = np.zeros(2, np.float32)
    with pytest.raises(FlowFileError, match="frame_std"):
        validate(path)


def test_precompute_stores_the_statistics_and_inspect_reports_cuts(tmp_path, capsys):
    frames = np.concatenate([moving(seed=0, frames=3), moving(seed=7, frames=3)])
    (tmp_path / "v").mkdir()
    write_test_clip(tmp_path / "v" / "spliced.mp4", frames, lossless=True)
    run_batch([tmp_path / "v"], tmp_path / "f", FlowJob(), show_progress=False)
    assert cuts(tmp_path / "f" / "spliced.h5") == [2]
    assert main(["flows", "inspect", str(tmp_path / "f" / "spliced.h5")]) == 0
    out = capsys.readouterr().out
    assert "cuts        1 pair (2)" in out and "median" in out
