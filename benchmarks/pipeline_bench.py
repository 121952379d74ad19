#!/usr/bin/env python3
"""Everything around the network: what decoding, the stabilizer and encoding cost on this machine.

    python benchmarks/pipeline_bench.py                          # 360p, 720p, 1080p; 60 frames
    python benchmarks/pipeline_bench.py --sizes 1080p --threads 1,16 --json out.json

However fast the network (a GPU's), a job cannot go faster than the rest of it. Per size and per
OpenCV thread count (``--threads``; 0: OpenCV's default, all cores) it prints:

- stabilizer ms/frame: :class:`vidstyle.infer.stabilize.Stabilizer` at the default strength alone,
  on the sample clip (resized) and a stand-in output that changes every frame;
- ceiling fps: :func:`vidstyle.infer.job.stylize_video` with a network that costs nothing (the
  frame, channels reversed), decode + stabilizer + x264 (``--preset``), with the stabilizer off
  and at the default strength: the most frames/s a job of that size can reach here.

Each row is the median of ``--rounds`` rounds; rounds alternate over the rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from common import machine
from infer_bench import SIZES, make_clip
from vidstyle.cli.infer import DEFAULT_STABILIZE
from vidstyle.infer.engine import FrameEngine
from vidstyle.infer.inferconfig import InferOptions
from vidstyle.infer.job import stylize_video
from vidstyle.infer.stabilize import Stabilizer, StabilizerConfig
from vidstyle.io.video import iter_frames


class FreeNetwork(FrameEngine):
    """A "network" that costs nothing: the frame with its channels reversed, batches of 8."""

    def __init__(self):
        self.plan = SimpleNamespace(device="none", device_type="cpu", batch_size=8, queue_depth=2,
                                    backend="none", compile=False)

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch[..., ::-1])


def stabilizer_ms(frames: list[np.ndarray]) -> float:
    """Milliseconds a frame for the stabilizer at the default strength on ``frames``."""
    outputs = [cv2.GaussianBlur(f, (5, 5), 0) ^ np.uint8(t % 2) for t, f in enumerate(frames)]
    stabilizer = Stabilizer(StabilizerConfig(strength=DEFAULT_STABILIZE))
    started = time.perf_counter()
    for frame_in, frame_out in zip(frames, outputs):
        stabilizer(frame_in, frame_out)
    return (time.perf_counter() - started) / len(frames) * 1e3


def ceiling_fps(clip: Path, strength: float, preset: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        result = stylize_video(clip, Path(tmp) / "out.mp4", FreeNetwork(),
                               options=InferOptions(stabilize=strength, preset=preset))
    return result.fps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="360p,720p,1080p")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", default="1,0", help="OpenCV thread counts (0: its default)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the jobs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    default_threads = cv2.getNumThreads()
    sizes = args.sizes.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        clips = {size: make_clip(Path(tmp), SIZES[size], args.frames) for size in sizes}
        frames = {size: list(iter_frames(clips[size])) for size in sizes}
        samples: dict[tuple[str, int], dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for size in sizes:
                for count in threads:
                    cv2.setNumThreads(count if count > 0 else default_threads)
                    row = samples.setdefault((size, count), {"stab": [], "off": [], "on": []})
                    row["stab"].append(stabilizer_ms(frames[size]))
                    row["off"].append(ceiling_fps(clips[size], 0.0, args.preset))
                    row["on"].append(ceiling_fps(clips[size], DEFAULT_STABILIZE, args.preset))
    cv2.setNumThreads(default_threads)

    print(f"# {machine('cpu')}; {args.frames} frames, x264 {args.preset}, median of {args.rounds} rounds")
    print("| size | OpenCV threads | stabilizer ms/frame | ceiling fps, stabilizer off "
          f"| ceiling fps, stabilizer {DEFAULT_STABILIZE} |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for (size, count), row in samples.items():
        med = {key: statistics.median(values) for key, values in row.items()}
        rows.append({"size": size, "opencv_threads": count or default_threads, **med})
        print(f"| {size} | {count or default_threads} | {med['stab']:.1f} | {med['off']:.1f} "
              f"| {med['on']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
