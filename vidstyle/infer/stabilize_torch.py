"""The stabilizer's blend in PyTorch, on the device where the network's outputs already are.

:class:`vidstyle.infer.stabilize.Stabilizer` blends in OpenCV on uint8 frames, in order, on one CPU
thread: at 1080p that is about 20 ms a frame (benchmarks/pipeline_bench.py), more than a GPU needs
for the network. When a job's network runs on CUDA, :func:`vidstyle.infer.job.stylize_video` hands
the blend to a :class:`TorchBlend` instead: the flow and trust are still worked out on the CPU
(:meth:`Stabilizer.see`, small frames, while decoding), and only they go to the device.

Same rule as :meth:`Stabilizer.apply` (see :mod:`vidstyle.infer.stabilize`); the results differ from
OpenCV's by rounding only (the previous result is kept in float32 here, in uint8 there).
"""

from __future__ import annotations

import collections

import torch
import torch.nn.functional as F

from vidstyle.infer.stabilize import Motion, StabilizerConfig, follows
from vidstyle.training.losses import warp


class TorchBlend:
    """Called with the network's outputs of the next frames, in order, after the motion of each was
    put in :attr:`motions` (one :class:`Motion` or None per frame, in the same order).

        blend = TorchBlend(StabilizerConfig(strength=0.6))
        blend.motions.extend(stabilizer.see(frame) for frame in frames)
        y = blend(net(x))      # (N, 3, H, W) in [0, 1] -> float32, the same shape and device

    Counts ``frames``, ``cuts`` and ``trusted`` as Stabilizer does (the same rule: ``follows``).
    """

    def __init__(self, config: StabilizerConfig):
        config.check()
        self.config = config
        self.motions: collections.deque[Motion | None] = collections.deque()
        self.reset()

    def reset(self) -> None:
        self.motions.clear()
        self._prev: torch.Tensor | None = None
        self.frames = self.cuts = 0
        self.trusted = 0.0

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        # float32 always (fp16 cannot place a sample in a 1080p frame), in y's memory layout
        out = y.to(torch.float32, copy=True)
        for i in range(len(out)):
            motion = self.motions.popleft()
            current, prev = out[i:i + 1], self._prev
            if follows(self, motion, prev, current.shape):
                out[i:i + 1] = self._blend(current, prev, motion)
            self._prev = out[i:i + 1].clone()
        return out

    def _blend(self, current: torch.Tensor, prev: torch.Tensor, motion: Motion) -> torch.Tensor:
        device, (height, width) = current.device, current.shape[-2:]
        trust = torch.from_numpy(motion.trust).to(device)[None, None]
        flow = torch.from_numpy(motion.flow_bw).to(device).permute(2, 0, 1)[None]
        small_h, small_w = trust.shape[-2:]
        alpha = trust * self.config.strength
        if (small_h, small_w) != (height, width):
            size = (height, width)
            scale = torch.tensor([width / small_w, height / small_h], device=device).view(1, 2, 1, 1)
            flow = F.interpolate(flow * scale, size=size, mode="bilinear", align_corners=False)
            alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
        return alpha * warp(prev, flow) + (1 - alpha) * current
