"""The inference stabilizer: still clips unchanged, no blending across cuts or occlusions, follows motion."""

import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tests.clips import write_test_clip
from tests.synthetic import moving_square_clip, texture, translation_pair
from vidstyle.errors import ConfigError
from vidstyle.flow.optical import warp
from vidstyle.infer.engine import FrameEngine
from vidstyle.infer.inferconfig import InferOptions
from vidstyle.infer.job import stylize_video
from vidstyle.infer.stabilize import Stabilizer, StabilizerConfig
from vidstyle.io.video import iter_frames

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


def test_on_frames_larger_than_the_flow_the_blend_follows_the_true_motion_with_its_weight():
    # 240x320 frames, flow computed at 160 px: flow, trust and weights are scaled up to full size.
    height, width, shift, strength = 240, 320, (4.0, 2.0), 0.5
    frames = [translation_pair(height, width, (k * shift[0], k * shift[1]), seed=2).frame_b
              for k in range(2)]
    # A network re-drawing smooth texture (blurred noise, as contrasted as the frames): a carry off
    # by a fraction of a pixel costs little, a wrong weight or a wrongly scaled flow costs much.
    rng = np.random.default_rng(3)
    stylized = [np.clip(128 + 6 * cv2.GaussianBlur(rng.normal(0, 40, f.shape), (0, 0), 2), 0, 255)
                .astype(np.uint8) for f in frames]
    stabilizer = Stabilizer(StabilizerConfig(strength=strength, flow_size=160))
    stabilizer.see(frames[0])
    trust = stabilizer.see(frames[1]).trust
    stabilizer.reset()
    first, second = (stabilizer(a, b) for a, b in zip(frames, stylized))
    weight = strength * cv2.resize(trust, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
    flow_bw = np.full((height, width, 2), -np.array(shift), np.float32)
    expected = weight * warp(first, flow_bw) + (1 - weight) * stylized[1]
    blended = (weight[..., 0] > 0.4) & (np.arange(width) >= 24) & (np.arange(height) >= 24)[:, None]
    error = np.abs(second.astype(float) - expected)[blended]
    assert stabilizer.cuts == 0 and blended.mean() > 0.5
    # Carried by a flow off by a pixel, or weighted otherwise, the error would be many levels.
    assert np.median(error) <= 1.0 and np.mean(error) < 1.2


class _BoilingNetwork(FrameEngine):
    """A stand-in network, batches of 4: each frame plus noise drawn from the frame's own bytes."""

    def __init__(self):
        self.plan = SimpleNamespace(device="cpu", device_type="cpu", batch_size=4, queue_depth=2,
                                    backend="test", compile=False)

    def _run_batch(self, batch):
        return np.stack([_boiling([f], seed=zlib.crc32(f.tobytes()))[0] for f in batch])


def test_a_job_blends_each_result_along_the_motion_of_its_own_input_frames(tmp_path):
    # The job works out the motion while decoding, ahead of the network, and blends when encoding:
    # its frames must be those of the stabilizer run frame by frame on the same outputs.
    frames = _translating_clip(11, (2.0, 1.0))
    frames[6:] = [texture(H, W, seed=8)] * 5                  # and a cut
    clip = write_test_clip(tmp_path / "in.mkv", frames, fps=12, lossless=True)
    out = stylize_video(clip, tmp_path / "out.mkv", _BoilingNetwork(),
                        options=InferOptions(stabilize=0.6, lossless=True))
    decoded = list(iter_frames(clip))
    expected, stabilizer = _run(0.6, decoded, _BoilingNetwork()(np.stack(decoded)))
    assert out.frames == 11 and stabilizer.cuts == 1
    assert np.array_equal(np.stack(list(iter_frames(out.output))), np.stack(expected))
