"""The stabilizer's blend in torch (used beside a network on a GPU): the OpenCV blend's results."""

import cv2
import numpy as np
import pytest
import torch

from tests.clips import write_test_clip
from tests.synthetic import texture, translation_pair
from vidstyle.infer import job
from vidstyle.infer.inferconfig import EngineConfig, InferOptions
from vidstyle.infer.stabilize import Stabilizer, StabilizerConfig
from vidstyle.infer.stabilize_torch import TorchBlend
from vidstyle.infer.stylize import Stylizer
from vidstyle.io.video import iter_frames

H, W = 120, 160     # the flow at 80 px: flow, trust and weights are scaled up


def _clip(num_frames=8, cut_at=5):
    frames = [translation_pair(H, W, (3.0 * k, -1.5 * k), seed=4).frame_b for k in range(num_frames)]
    return frames[:cut_at] + [texture(H, W, seed=11)] * (num_frames - cut_at)


def _redrawn(frames, seed=0):
    """A network that re-draws its texture every frame: the frame plus smooth noise."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + 4 * cv2.GaussianBlur(rng.normal(0, 20, f.shape), (0, 0), 1.5), 0, 255)
            .astype(np.uint8) for f in frames]


def _to_tensor(frames, dtype=torch.float32):
    # (N, 3, H, W) in [0, 1]; fp16 in the layout a network on CUDA gives (channels_last)
    y = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).to(dtype) / 255
    return y if dtype == torch.float32 else y.contiguous(memory_format=torch.channels_last)


def _to_uint8(y):
    return y.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("dtype, batch", [(torch.float32, 3), (torch.float16, 8)])
def test_torch_blend_gives_the_opencv_stabilizers_frames(dtype, batch):
    config = StabilizerConfig(strength=0.6, flow_size=80)
    frames = _clip()
    outputs = _redrawn(frames)
    reference = Stabilizer(config)
    expected = np.stack([reference(a, b) for a, b in zip(frames, outputs)])

    seer, blend = Stabilizer(config), TorchBlend(config)
    got = []
    for start in range(0, len(frames), batch):       # batches, as a network gives them
        blend.motions.extend(seer.see(f) for f in frames[start:start + batch])
        got.append(_to_uint8(blend(_to_tensor(outputs[start:start + batch], dtype))))
    got = np.concatenate(got)

    assert (blend.frames, blend.cuts) == (reference.frames, reference.cuts) == (8, 1)
    assert blend.trusted == pytest.approx(reference.trusted)
    difference = np.abs(got.astype(int) - expected)
    # The same blend (a wrong weight or flow would cost tens of levels); the rounding differs:
    # OpenCV keeps the previous result in uint8, torch in float32, and fp16 inputs lose a level.
    assert difference.max() <= 3 and difference.mean() < 0.25
    assert not np.array_equal(expected[4], outputs[4])      # it did blend
    assert np.array_equal(got[5], outputs[5])                # and started afresh at the cut


class _Redraw(torch.nn.Module):
    """Frames in [0, 1] plus a pattern that changes with the frame's content: a flickering network."""

    def forward(self, x):
        phase = x.mean(dim=(1, 2, 3), keepdim=True) * 400
        return (x + 0.08 * torch.sin(60 * x + phase)).clamp(0, 1)


def test_a_job_blends_beside_the_network_as_the_encoder_would(tmp_path, monkeypatch):
    clip = write_test_clip(tmp_path / "in.mkv", _clip(11, cut_at=7), fps=12, lossless=True)
    options = InferOptions(stabilize=0.6, lossless=True)
    stylizer = Stylizer(_Redraw(), EngineConfig(device="cpu", batch_size=4, compile=False, threads=1))

    job.stylize_video(clip, tmp_path / "encoder.mkv", stylizer, options=options)
    monkeypatch.setattr(job, "DEVICE_BLEND_TYPES", ("cuda", "cpu"))
    seen = []
    monkeypatch.setattr(TorchBlend, "__call__", lambda self, y, call=TorchBlend.__call__:
                        seen.append(len(y)) or call(self, y))
    job.stylize_video(clip, tmp_path / "device.mkv", stylizer, options=options)

    assert seen == [4, 4, 3] and stylizer.blend is None      # blended by batch, then detached
    by_encoder = np.stack(list(iter_frames(tmp_path / "encoder.mkv")))
    by_network = np.stack(list(iter_frames(tmp_path / "device.mkv")))
    unblended = stylizer(np.stack(list(iter_frames(clip))))
    difference = np.abs(by_network.astype(int) - by_encoder)
    assert difference.max() <= 3 and difference.mean() < 0.25
    assert np.abs(by_encoder.astype(int) - unblended).mean() > 1    # there was blending to match
