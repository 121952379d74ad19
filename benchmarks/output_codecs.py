#!/usr/bin/env python3
"""What each output container's video coding costs and keeps: .mp4 (x264) against .webm (VP9).

    python benchmarks/output_codecs.py STYLIZED.mkv                 # a lossless stylized clip
    python benchmarks/output_codecs.py STYLIZED.mkv --crfs 18,23 --frames 120 --json out.json

The input should be a stylized video written with ``--lossless`` (its texture is what the coder
must keep). Each row writes its first ``--frames`` frames with :func:`vidstyle.io.encode.write_video`
as infer would (``--crf``, preset veryfast) and prints the frames/s of the encoding alone, the file's
size and the PSNR (dB, RGB, against the frames given). Rows alternate over ``--rounds`` rounds; the
speed is their median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine
from vidstyle.io.encode import WEBM_CRF_OFFSET, write_video
from vidstyle.io.video import iter_frames, probe


def psnr(decoded: np.ndarray, frames: np.ndarray) -> float:
    mse = float(np.mean((decoded.astype(np.float64) - frames) ** 2))
    return 10 * np.log10(255.0 ** 2 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--crfs", default="18", help="--crf values, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    fps = probe(args.video).fps
    frames = np.stack(list(iter_frames(args.video, max_frames=args.frames)))
    rows = [{"suffix": suffix, "crf": int(crf)}
            for crf in args.crfs.split(",") for suffix in (".mp4", ".webm")]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for row in rows:
                out = Path(tmp) / f"out{row['suffix']}"
                started = time.perf_counter()
                write_video(out, frames, fps, crf=row["crf"], preset="veryfast")
                row.setdefault("seconds", []).append(time.perf_counter() - started)
                row["kB"] = out.stat().st_size / 1e3
                row["psnr"] = psnr(np.stack(list(iter_frames(out))), frames)

    height, width = frames.shape[1:3]
    print(f"{machine()}; {args.video.name}, {len(frames)} frames at {width}x{height}, "
          f"median of {args.rounds} rounds")
    print(f"VP9 runs at --crf + {WEBM_CRF_OFFSET} on its own scale.\n")
    print("| output | --crf | coder | encode frames/s | size kB | PSNR dB |\n|---|---:|---|---:|---:|---:|")
    for row in rows:
        row["fps"] = len(frames) / statistics.median(row["seconds"])
        coder = ("x264 veryfast" if row["suffix"] == ".mp4"
                 else f"VP9 realtime, crf {row['crf'] + WEBM_CRF_OFFSET}")
        print(f"| {row['suffix']} | {row['crf']} | {coder} | {row['fps']:.1f} | {row['kB']:.0f} | "
              f"{row['psnr']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "video": args.video.name, "rows": rows},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
