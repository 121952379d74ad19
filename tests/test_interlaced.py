"""Interlaced video (camcorders, broadcasts): each frame's two fields are made one whole frame
before anything else sees it, one frame out per frame in, at the same times."""

import av
import numpy as np

from tests.clips import write_test_clip
from tests.testmodel import run_cli
from vidstyle.io.random_access import read_frames
from vidstyle.io.video import iter_frames, iter_timed_frames, probe

WIDTH, HEIGHT, FRAMES = 96, 64, 10


def _two_moments(num_frames: int) -> np.ndarray:
    """Frames whose even lines show a bright bar at one place and odd lines the same bar 8 pixels
    on, as a camera filming a moving bar field by field records it."""
    frames = np.full((num_frames, HEIGHT, WIDTH, 3), 40, np.uint8)
    for t in range(num_frames):
        left = 10 + 6 * t
        frames[t, 0::2, left:left + 12] = 230
        frames[t, 1::2, left + 8:left + 20] = 230
    return frames


def _combing(frames: np.ndarray) -> float:
    """Mean difference of each line from the mean of its two neighbours: large where the odd and
    even lines show different moments."""
    grey = frames.astype(np.float64).mean(-1)
    return float(np.abs(grey[:, 1:-1] - (grey[:, :-2] + grey[:, 2:]) / 2).mean())


def _decoded_as_stored(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_an_interlaced_clip_is_read_as_whole_frames_at_its_own_times(tmp_path):
    clip = write_test_clip(tmp_path / "camcorder.mp4", _two_moments(FRAMES), fps=25, interlaced=True)
    stored = _decoded_as_stored(clip)
    info = probe(clip)
    assert info.interlaced and info.num_frames == FRAMES
    timed = list(iter_timed_frames(clip))
    frames = np.stack([frame for _, frame in timed])
    assert np.allclose([t for t, _ in timed], np.arange(FRAMES) / 25)
    assert _combing(frames) < 0.3 * _combing(stored), (_combing(frames), _combing(stored))
    # the bar stays where the fields put it: between the two fields' places, not smeared away
    assert np.abs(frames.astype(int).mean() - stored.astype(int).mean()) < 2
    assert np.array_equal(read_frames(clip, [7, 2]), frames[[7, 2]])
    assert np.array_equal(np.stack(list(iter_frames(clip, start=0.2))), frames[5:])


def test_a_progressive_clip_is_read_as_stored(tmp_path):
    clip = write_test_clip(tmp_path / "phone.mp4", _two_moments(FRAMES), fps=25)
    assert not probe(clip).interlaced
    assert np.array_equal(np.stack(list(iter_frames(clip))), _decoded_as_stored(clip))


def test_infer_stylizes_an_interlaced_clip_frame_for_frame(capsys, tmp_path, model):
    clip = write_test_clip(tmp_path / "tape.mp4", _two_moments(FRAMES), fps=25, interlaced=True)
    code, _, err = run_cli(capsys, "infer", clip, "--model", model, "-o", tmp_path / "out.mp4",
                           "--backend", "torch")
    assert code == 0, err
    out = probe(tmp_path / "out.mp4")
    assert (out.num_frames, out.size, out.fps, out.interlaced) == (FRAMES, (WIDTH, HEIGHT), 25, False)
