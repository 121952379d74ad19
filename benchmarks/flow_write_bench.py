#!/usr/bin/env python3
"""What writing a flow file safely costs per pair, next to computing the pair's flow.

Times, per pair, on one real clip: Farneback flow fw + bw + mask (``compute_pair``, for scale), the
pair statistics (``pair_statistics``: warp + correlation), the HDF5 writes, and the finish (space
claimed up front, close, fsync, read-back of every chunk, rename), and prints a table.

    python benchmarks/flow_write_bench.py                                    # vtest.avi at 640x360
    python benchmarks/flow_write_bench.py clip.mp4 --size 320x180 --pairs 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)
from vidstyle.flow.flowwriter import FlowFileWriter
from vidstyle.flow.optical import compute_pair
from vidstyle.flow.pairstats import pair_statistics
from vidstyle.flow.precompute import parse_size
from vidstyle.io.video import iter_frames

DEFAULT_CLIP = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
ATTRS = {"source": "bench", "source_size": 0, "source_mtime": 0.0, "fps": 25.0, "flow_method": "farneback",
         "flow_params": {}, "created": "bench", "vidstyle_version": "bench"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", default=DEFAULT_CLIP)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--pairs", type=int, default=20)
    args = parser.parse_args()
    size = parse_size(args.size)
    frames = list(iter_frames(args.clip, size=size, max_frames=args.pairs + 1))
    start = time.perf_counter()
    pairs = [compute_pair(a, b) for a, b in zip(frames, frames[1:])]
    flow_s = time.perf_counter() - start
    start = time.perf_counter()
    for (a, b), (_, flow_bw, mask) in zip(zip(frames, frames[1:]), pairs):
        pair_statistics(a, b, flow_bw, mask)
    stats_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        writer = FlowFileWriter(Path(folder) / "bench.h5", num_frames=len(frames), height=size[1],
                                width=size[0], attrs=ATTRS)
        start = time.perf_counter()
        with writer:
            for t, frame in enumerate(frames):
                writer.write_frame(t, frame)
                if t:
                    writer.write_pair(t - 1, *pairs[t - 1])
            write_s = time.perf_counter() - start
            start = time.perf_counter()
        finish_s = time.perf_counter() - start

    n = len(pairs)
    print(f"{args.clip} at {args.size}, {n} pairs; ms per pair")
    print("| step | ms/pair |")
    print("|---|---|")
    for name, seconds in (("flow fw + bw + mask (farneback)", flow_s), ("pair statistics", stats_s),
                          ("HDF5 writes incl. statistics", write_s),
                          ("finish: close, fsync, read back, rename", finish_s)):
        print(f"| {name} | {1000 * seconds / n:.1f} |")


if __name__ == "__main__":
    main()
