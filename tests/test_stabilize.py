"""The inference stabilizer: still clips unchanged, no blending across cuts or occlusions, follows motion."""

import numpy as np
import pytest

from tests.synthetic import moving_square_clip, texture, translation_pair
from vidstyle.errors import ConfigError
from vidstyle.flow.optical import warp
from vidstyle.infer.stabilize import Stabilizer, StabilizerConfig

H, W = 72, 96


def _translating_clip(num_frames, shift, seed=0):
    """uint8 (T, H, W, 3): texture moving by ``shift`` (dx, dy) pixels a frame, exact (no interpolation)."""
    return np.stack([translation_pair(H, W, (k * shift[0], k * shift[1]), seed).frame_b
                     for k in range(num_frames)])


def _boiling(frames, sigma=25.0, seed=0):
    """A stand-in network that re-draws its texture every frame: the input plus fresh noise."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def _run(strength, frames_in, frames_out, **settings):
    stabilizer = Stabilizer(StabilizerConfig(strength=strength, **settings))
    return [stabilizer(a, b) for a, b in zip(frames_in, frames_out)], stabilizer


def test_still_clip_with_steady_output_comes_out_unchanged():
    frames = [texture(H, W, seed=3)] * 6
    stylized = [np.roll(texture(H, W, seed=4), 5, axis=1)] * 6
    out, stabilizer = _run(0.8, frames, stylized)
    assert all(np.abs(o.astype(int) - s.astype(int)).max() <= 1 for o, s in zip(out, stylized))
    assert stabilizer.cuts == 0 and stabilizer.trusted / 5 > 0.95


def test_strength_zero_returns_the_network_output_itself():
    frames = _translating_clip(4, (2.0, 1.0))
    stylized = _boiling(frames)
    out, _ = _run(0.0, frames, stylized)
    assert all(o is s for o, s in zip(out, stylized))


def test_nothing_is_blended_across_a_cut():
    frames = [texture(H, W, seed=1)] * 3 + [texture(H, W, seed=9)] * 2
    stylized = _boiling(frames, seed=2)
    out, stabilizer = _run(0.8, frames, stylized)
    assert stabilizer.cuts == 1
    assert np.array_equal(out[3], stylized[3])          # the first frame after the cut starts afresh
    assert not np.array_equal(out[2], stylized[2])      # before the cut, frames were blended


def test_follows_a_known_translation_and_removes_frame_to_frame_noise():
    shift = (2.0, -1.0)
    frames = _translating_clip(12, shift)
    stylized = _boiling(frames)
    out, stabilizer = _run(0.8, frames, stylized)
    flow_bw = np.zeros((H, W, 2), np.float32)
    flow_bw[..., 0], flow_bw[..., 1] = -shift[0], -shift[1]
    inner = (slice(8, H - 8), slice(8, W - 8))

    def temporal_error(video):
        diffs = [video[t].astype(float) - warp(video[t - 1], flow_bw).astype(float)
                 for t in range(4, len(video))]
        return np.mean([np.mean(d[inner] ** 2) for d in diffs])

    assert stabilizer.cuts == 0
    assert temporal_error(out) < 0.3 * temporal_error(stylized)
    # Carried along the true motion, the result still shows the scene where it is now: its error to
    # the clean input is below the noisy network's (the noise is averaged away, not smeared).
    assert np.mean(np.abs(out[-1].astype(float) - frames[-1])[inner]) < \
        0.8 * np.mean(np.abs(stylized[-1].astype(float) - frames[-1])[inner])


def test_a_moving_object_leaves_no_trail():
    frames = moving_square_clip(8, H, W, size=24, velocity=(4.0, 0.0), seed=5)
    out, _ = _run(0.9, frames, list(frames))     # a perfectly steady "network": the input itself
    # Wherever the square was two frames ago and no longer is, the result must show the background.
    for t in range(2, len(frames)):
        trail = np.any(frames[t - 2] != frames[t], axis=2)
        error = np.abs(out[t].astype(int) - frames[t].astype(int)).max(axis=2)
        assert np.mean(error[trail]) < 6, t


def test_reset_starts_a_new_video_without_the_old_one():
    frames = [texture(H, W, seed=1)] * 3
    stylized = _boiling(frames, seed=1)
    stabilizer = Stabilizer(StabilizerConfig(strength=0.8))
    for a, b in zip(frames, stylized):
        stabilizer(a, b)
    stabilizer.reset()
    assert np.array_equal(stabilizer(frames[0], stylized[0]), stylized[0])


@pytest.mark.parametrize("strength", [-0.1, 1.0, 2.0, float("nan")])
def test_strength_outside_zero_to_one_is_refused(strength):
    with pytest.raises(ConfigError, match="stabilize"):
        Stabilizer(StabilizerConfig(strength=strength))
