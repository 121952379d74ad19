"""vidstyle live --no-drop: a file source hands over every frame, so a recording holds each one."""

import time

import numpy as np
import pytest

from tests.clips import distinct_frames, write_test_clip
from tests.testmodel import run_cli
from vidstyle.errors import ConfigError
from vidstyle.infer.live import FrameSource, run_live
from vidstyle.io.video import iter_frames, probe


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 frames at 200 frames/s, 32x24, lossless."""
    return write_test_clip(tmp_path_factory.mktemp("nodrop") / "src.mp4", distinct_frames(20, 32, 24),
                           fps=200, lossless=True)


def _slow_invert(frames):
    time.sleep(0.03)            # 6x slower than the source's 5 ms a frame
    return 255 - frames


def test_without_dropping_every_source_frame_is_stylized_in_order(clip):
    written = []

    class Collect:
        def write(self, rgb):
            written.append(rgb)

    stats = run_live(_slow_invert, FrameSource(str(clip), drop=False), [Collect()])
    assert stats.frames_in == stats.stylized == len(written) == 20 and stats.dropped == 0
    inputs = np.stack(list(iter_frames(clip)))
    assert all(np.array_equal(out, 255 - frame) for out, frame in zip(written, inputs))


def test_a_camera_or_stream_cannot_be_told_not_to_drop():
    with pytest.raises(ConfigError, match="file sources"):
        FrameSource("rtsp://127.0.0.1:9/none", drop=False)


def test_live_no_drop_records_every_frame_to_a_file(capsys, tmp_path, clip, model):
    out = tmp_path / "rec.mp4"
    code, _, err = run_cli(capsys, "live", "--model", model, "--source", clip, "--no-window",
                           "--output", out, "--no-drop")
    assert code == 0, err
    assert probe(out).num_frames == 20
