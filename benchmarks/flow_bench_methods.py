#!/usr/bin/env python3
"""Flow methods compared on real video: speed on one core and how well flow_bw predicts the next frame.

For consecutive frame pairs of real clips, runs ``vidstyle.flow.optical.compute_pair`` (forward flow, backward
flow and consistency mask) with OpenCV pinned to one thread, for Farneback (tutorial and tuned
parameters), DIS (each preset) and DeepFlow, and prints a markdown table:

- pairs/s: one over the median CPU time of compute_pair with one thread (frames already decoded);
  CPU time rather than wall time so that other work on a shared machine does not skew it;
- E_warp, own mask: mean squared RGB error (0-1 scale, x 1e3) of warp(frame_t, flow_bw) against
  frame t+1 on the pixels the method's own mask keeps, and that mask's share of the frame (valid);
- E_warp, common mask: the same error on the pixels that every method's mask keeps, so that a
  method cannot look better by discarding its hard pixels.

Real video has no true flow, so the photometric error stands in for accuracy; see tests/test_flow.py
for end-point errors on synthetic motion.

    python benchmarks/flow_bench_methods.py                          # three clips of ../shared/data
    python benchmarks/flow_bench_methods.py clip.mp4 --pairs 20 --skip deepflow
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from common import SHARED_CLIPS, cpu_name
from vidstyle.evaluate.metrics import to_unit, warping_error
from vidstyle.flow import optical as flow
from vidstyle.io.video import iter_frames

DEFAULT_CLIPS = ("davis_bmx-trees.mp4", "davis_dog.mp4", "sam2_bedroom.mp4")

# (row label, method, params); an empty params dict means the module's DEFAULT_PARAMS.
CONFIGS = (
    ("farneback, tutorial parameters", "farneback", flow.TUTORIAL_FARNEBACK),
    ("farneback, tuned defaults", "farneback", {}),
    ("dis ultrafast", "dis", {"preset": "ultrafast"}),
    ("dis fast", "dis", {"preset": "fast"}),
    ("dis medium", "dis", {"preset": "medium"}),
    ("deepflow", "deepflow", {}),
)


@dataclass
class Result:
    label: str
    seconds: list[float] = field(default_factory=list)
    own_error: list[float] = field(default_factory=list)
    valid: list[float] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)  # warp(frame_t, flow_bw), float16


def load_pairs(clips: list[Path], pairs_per_clip: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive (frame_t, frame_t1) uint8 RGB pairs from the start of each clip."""
    pairs = []
    for clip in clips:
        frames = list(iter_frames(clip, max_frames=pairs_per_clip + 1))
        pairs += list(zip(frames[:-1], frames[1:]))
    return pairs


def run_method(label: str, method: str, params: dict, pairs) -> Result:
    result = Result(label)
    for frame_t, frame_t1 in pairs:
        start = time.process_time()
        _, flow_bw, mask = flow.compute_pair(frame_t, frame_t1, method, **params)
        result.seconds.append(time.process_time() - start)
        result.own_error.append(warping_error(to_unit(frame_t), to_unit(frame_t1), flow_bw, mask))
        result.valid.append(float(mask.mean()))
        result.masks.append(mask.astype(bool))
        result.predictions.append(flow.warp(to_unit(frame_t), flow_bw).astype(np.float16))
    return result


def common_mask_error(result: Result, common: list[np.ndarray], pairs) -> float:
    """Mean over pairs of the masked squared error on the pixels every method keeps."""
    errors = []
    for prediction, keep, (_, frame_t1) in zip(result.predictions, common, pairs):
        diff = to_unit(frame_t1) - prediction.astype(np.float32)
        errors.append(float(np.mean(np.square(diff[keep]))))
    return float(np.mean(errors))


def print_table(results: list[Result], common_errors: list[float], common_share: float) -> None:
    print("| method | pairs/s (1 core) | E_warp x1e3, own mask | valid | E_warp x1e3, common mask |")
    print("|---|---:|---:|---:|---:|")
    for result, common in zip(results, common_errors):
        print(f"| {result.label} | {1.0 / np.median(result.seconds):.1f} | "
              f"{1e3 * np.mean(result.own_error):.2f} | {100 * np.mean(result.valid):.1f}% | "
              f"{1e3 * common:.2f} |")
    print(f"\nCommon mask: {100 * common_share:.1f}% of pixels.")


def machine() -> str:
    return f"{cpu_name()}, OpenCV {cv2.__version__}, 1 thread"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="*", type=Path, help="640x360 clips (default: three shared clips)")
    parser.add_argument("--pairs", type=int, default=6, help="consecutive pairs per clip (default 6)")
    parser.add_argument("--skip", nargs="*", default=[], choices=flow.FLOW_METHODS,
                        help="methods to leave out (deepflow takes about 2 s a pair)")
    args = parser.parse_args(argv)
    clips = args.clips or [SHARED_CLIPS / name for name in DEFAULT_CLIPS]
    missing = [str(c) for c in clips if not c.exists()]
    if missing:
        parser.error(f"clip(s) not found: {', '.join(missing)}")

    cv2.setNumThreads(1)
    pairs = load_pairs(clips, args.pairs)
    height, width = pairs[0][0].shape[:2]
    print(f"{len(pairs)} pairs at {width}x{height} from {', '.join(c.name for c in clips)}; {machine()}\n")
    results = [run_method(label, method, params, pairs)
               for label, method, params in CONFIGS if method not in args.skip]
    common = [np.logical_and.reduce(masks) for masks in zip(*(r.masks for r in results))]
    common_errors = [common_mask_error(r, common, pairs) for r in results]
    print_table(results, common_errors, float(np.mean([c.mean() for c in common])))


if __name__ == "__main__":
    main()
