#!/usr/bin/env python3
"""Random access to video frames: decord against what the package does without it.

    python benchmarks/random_access_bench.py CLIP.mp4 [--picks 20] [--rounds 3]

Reads ``--picks`` random frame indices (fixed seed, spread over the whole clip) four ways, each
timed from opening the file to holding the frames (uint8 RGB), best of ``--rounds``:

- decord: a fresh ``decord.VideoReader`` and one ``get_batch`` (what ``read_frames`` uses).
- pyav seek: for each index (sorted), seek to the keyframe before it and decode up to it.
- pyav sequential: decode from the first frame up to the last index (``read_frames``'s fallback).
- stream all: ``iter_frames`` over the whole clip, the way every caller in the package reads video.

Prints one table (milliseconds, and milliseconds per picked frame).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidstyle.io.video import iter_frames, probe  # noqa: E402


def with_decord(path: str, indices: list[int]) -> np.ndarray:
    import decord

    return decord.VideoReader(path, ctx=decord.cpu(0)).get_batch(indices).asnumpy()


def with_pyav_seek(path: str, indices: list[int], fps: float) -> np.ndarray:
    frames = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        origin = stream.start_time or 0
        for index in sorted(set(indices)):
            container.seek(origin + int(index / fps / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                if round((frame.pts - origin) * stream.time_base * fps) >= index:
                    frames[index] = frame.to_ndarray(format="rgb24")
                    break
    return np.stack([frames[i] for i in indices])


def with_pyav_sequential(path: str, indices: list[int]) -> np.ndarray:
    wanted, frames = set(indices), {}
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = frame.to_ndarray(format="rgb24")
            if index >= max(indices):
                break
    return np.stack([frames[i] for i in indices])


def stream_all(path: str, indices: list[int]) -> np.ndarray:
    frames = list(iter_frames(path))
    return np.stack([frames[i] for i in indices])


def best_ms(read, rounds: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        out = read()
        times.append(time.perf_counter() - started)
    return 1000 * min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--picks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    info = probe(args.clip)
    indices = [int(i) for i in np.random.default_rng(0).choice(info.num_frames, args.picks, replace=False)]
    ways = {
        "decord": lambda: with_decord(args.clip, indices),
        "pyav seek": lambda: with_pyav_seek(args.clip, indices, info.fps),
        "pyav sequential": lambda: with_pyav_sequential(args.clip, indices),
        "stream all": lambda: stream_all(args.clip, indices),
    }
    print(f"{Path(args.clip).name}: {info.num_frames} frames {info.width}x{info.height}, "
          f"{args.picks} random frames, best of {args.rounds}; {platform.processor() or platform.machine()}")
    print(f"{'way':<16} {'ms':>8} {'ms/frame':>9} {'max |diff| vs stream':>21}")
    reference = None
    for name, read in reversed(list(ways.items())):  # stream all first: the reference
        ms, out = best_ms(read, args.rounds)
        reference = out if reference is None else reference
        diff = int(np.abs(out.astype(int) - reference.astype(int)).max())
        print(f"{name:<16} {ms:8.1f} {ms / args.picks:9.2f} {diff:21d}")


if __name__ == "__main__":
    main()
