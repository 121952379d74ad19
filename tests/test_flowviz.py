"""The library side of ``vidstyle flows inspect | show`` and the precompute job's own checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.flowfiles import SHIFT, write_translation_clip
from vidstyle.errors import ConfigError
from vidstyle.flow.flowstore import FlowFile
from vidstyle.flow.flowviz import render_pair, summarize
from vidstyle.flow.precompute import FlowJob, run_batch

H, W = 48, 64


@pytest.fixture
def clip_file(tmp_path):
    return str(write_translation_clip(tmp_path / "shift.h5", height=H, width=W))


def test_summarize_reports_the_known_motion_and_mask(clip_file):
    info = summarize(clip_file)
    with FlowFile(clip_file) as clip:
        valid = [float(clip.pair(t).mask.mean()) for t in range(clip.num_pairs)]
    assert info["mean_flow_pixels"] == pytest.approx(math.hypot(*SHIFT), rel=1e-3)   # float16 flow
    assert info["mean_mask_valid"] == pytest.approx(np.mean(valid))
    assert info["cuts"] == [] and info["flat_frames"] == []
    assert info["bytes_per_pair"] == info["bytes"] // 2 and info["attrs"]["num_frames"] == 3


def test_render_pair_lays_out_frames_mask_flows_and_the_warp(clip_file):
    picture = render_pair(clip_file, 0)
    with FlowFile(clip_file) as clip:
        pair = clip.pair(0)
    assert picture.shape == (2 * H, 3 * W, 3) and picture.dtype == np.uint8
    assert np.array_equal(picture[:H, :W], pair.frame_t)
    assert np.array_equal(picture[:H, W:2 * W], pair.frame_t1)
    assert np.array_equal(picture[:H, 2 * W:, 0], pair.mask * 255)
    # Frame t warped by the exact backward flow is frame t+1 wherever the mask trusts it.
    warped = picture[H:, 2 * W:].astype(int)
    keep = pair.mask.astype(bool)
    assert np.abs(warped - pair.frame_t1)[keep].mean() < 3
    # The forward and backward flows point opposite ways, so their colours differ.
    fw, bw = picture[H:, :W], picture[H:, W:2 * W]
    assert not np.array_equal(fw[keep], bw[keep])
    with pytest.raises(ConfigError, match="--pair must be between 0 and 1"):
        render_pair(clip_file, 2)


@pytest.mark.parametrize("job, message", [(FlowJob(method="sobel"), "unknown flow method 'sobel'"),
                                          (FlowJob(max_frames=1), "--max-frames must be at least 2")])
def test_flow_job_check_refuses_settings_before_any_folder_is_made(tmp_path, job, message):
    with pytest.raises(ConfigError, match=message):
        job.check()
    with pytest.raises(ConfigError, match=message):
        run_batch([tmp_path], tmp_path / "out", job, show_progress=False)
    assert not (tmp_path / "out").exists()
