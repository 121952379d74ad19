#!/usr/bin/env python3
"""Flow precompute benchmark: the batch job's speed per method, its worker scaling, and storage.

Runs ``vidstyle.flow.precompute.run_batch`` itself (decode + resize + flow fw + bw + mask + HDF5 write) on
real clips, once with one worker pinned to one core and once with one worker per core, and prints:

1. pairs/s per flow method, 1 core and N cores, and the scaling against N x the 1-core rate;
2. for the chosen store layout and alternatives: bytes per pair, write and read ms per pair.

    python benchmarks/flow_bench.py                       # ../shared/data clips, 640x360
    python benchmarks/flow_bench.py clip1.mp4 clip2.mp4 --pairs 20 --methods farneback dis
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import SHARED_CLIPS
from vidstyle.flow.flowstore import FlowFile
from vidstyle.flow.flowwriter import write_clip
from vidstyle.flow.precompute import FlowJob, parse_size, run_batch

OPENCV_SAMPLE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def default_clips(count: int) -> list[Path]:
    found = sorted(SHARED_CLIPS.glob("davis_*.mp4"))[:count]
    if len(found) < count and OPENCV_SAMPLE.exists():
        found.append(OPENCV_SAMPLE)
    if not found:
        sys.exit("no clips given and none found in ../shared/data/clips or opencv-doc")
    return found


def _kernel_rate(core: int, seconds: float = 3.0) -> float:
    """Farneback calls per second on random 640x360 frames, pinned to ``core``."""
    import cv2

    os.sched_setaffinity(0, {core})
    cv2.setNumThreads(1)
    a = np.random.default_rng(core).integers(0, 256, (360, 640), dtype=np.uint8)
    b = np.roll(a, 2, axis=1)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 1, 5, 1.1, 0)
        calls += 1
    return calls / (time.perf_counter() - start)


def machine_ceiling(workers: int) -> float:
    """How many times one core's throughput ``workers`` pinned processes get together on this
    machine: shared vCPUs (SMT siblings, an overcommitted host) give less than ``workers``."""
    import multiprocessing as mp

    cores = sorted(os.sched_getaffinity(0))
    with mp.get_context("spawn").Pool(workers) as pool:
        one = pool.apply(_kernel_rate, (cores[0],))
        together = pool.map(_kernel_rate, [cores[i % len(cores)] for i in range(workers)])
    return sum(together) / one


def time_batch(clips: list[Path], job: FlowJob, workers: int) -> tuple[float, int, int]:
    """(pairs/s, pairs, bytes stored) of one fresh run of the batch job."""
    import cv2

    all_cores = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory() as out:
        if workers == 1:
            # Truly one core: decoder and HDF5 threads would otherwise borrow the others.
            os.sched_setaffinity(0, {min(all_cores)})
            cv2.setNumThreads(1)
        start = time.perf_counter()
        try:
            summary = run_batch(clips, out, job, workers=workers, show_progress=False)
        finally:
            os.sched_setaffinity(0, all_cores)
            cv2.setNumThreads(len(all_cores))
        seconds = time.perf_counter() - start
        failed = [r.error for r in summary.results if r.status == "failed"]
        if failed:
            sys.exit(f"benchmark clip failed: {failed[0]}")
        stored = sum(p.stat().st_size for p in Path(out).glob("*.h5"))
    return summary.pairs / seconds, summary.pairs, stored


def storage_table(clip: Path, job: FlowJob, pairs: int) -> list[tuple[str, float, float, float]]:
    """Bytes, write ms and read ms per pair of one clip's arrays stored with each compression."""
    import vidstyle.flow.flowstore as store

    with tempfile.TemporaryDirectory() as out:
        run_batch([clip], out, FlowJob(job.method, job.params, job.size, pairs + 1), show_progress=False)
        with FlowFile(next(Path(out).glob("*.h5"))) as source:
            frames = np.stack([source.frame(t) for t in range(source.num_frames)])
            arrays = [np.stack([getattr(source.pair(t), name) for t in range(source.num_pairs)])
                      for name in ("flow_fw", "flow_bw", "mask")]
            attrs = dict(source.attrs)
        rows: list[tuple[str, float, float, float]] = []
        for label, compression in (("mask lzf (default)", store.DEFAULT_COMPRESSION),
                                   ("none", None), ("lzf everywhere", "lzf"), ("gzip everywhere", "gzip")):
            path = Path(out) / f"{label.split()[0]}-{len(rows)}.h5"
            start = time.perf_counter()
            write_clip(path, frames, *arrays, attrs=attrs, compression=compression)
            write_ms = (time.perf_counter() - start) * 1e3 / pairs
            with FlowFile(path) as clip:
                start = time.perf_counter()
                for t in range(clip.num_pairs):
                    clip.pair(t)
                read_ms = (time.perf_counter() - start) * 1e3 / pairs
            rows.append((label, path.stat().st_size / pairs, write_ms, read_ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, help="real clips (default: 4 from ../shared/data)")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--pairs", type=int, default=16, help="pairs per clip (default 16)")
    parser.add_argument("--methods", nargs="+", default=["farneback", "dis", "deepflow"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    clips = args.clips or default_clips(2 * args.workers)
    size = parse_size(args.size)

    ceiling = machine_ceiling(args.workers)
    print(f"{len(clips)} clips x {args.pairs} pairs at {args.size}; {os.cpu_count()} cores; "
          f"decode + flow fw + bw + mask + HDF5 write")
    print(f"machine ceiling: {args.workers} pinned processes of a Farneback loop get {ceiling:.2f}x "
          f"one core's throughput (linear would be {args.workers}x)\n")
    print(f"| method | 1 core pairs/s | {args.workers} workers pairs/s | scaling vs linear "
          f"| scaling vs machine ceiling | kB/pair stored |")
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        job = FlowJob(method=method, size=size, max_frames=args.pairs + 1)
        one, pairs, stored = time_batch(clips, job, 1)
        many, _, _ = time_batch(clips, job, args.workers)
        print(f"| {method} | {one:.1f} | {many:.1f} | {many / (args.workers * one):.2f} "
              f"| {many / (ceiling * one):.2f} | {stored / pairs / 1e3:.0f} |", flush=True)

    print(f"\nstorage of one clip ({clips[0].name}, {args.pairs} pairs, farneback):\n")
    print("| compression | kB/pair | write ms/pair | read ms/pair |")
    print("|---|---|---|---|")
    for name, size_b, write_ms, read_ms in storage_table(clips[0], FlowJob(size=size), args.pairs):
        print(f"| {name} | {size_b / 1e3:.0f} | {write_ms:.1f} | {read_ms:.1f} |")


if __name__ == "__main__":
    main()
