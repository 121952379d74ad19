#!/usr/bin/env python3
"""Cut the demo clip ``data/samples/vtest_4s.mp4`` from OpenCV's own test footage.

    python data/samples/make_sample.py [--source /usr/share/doc/opencv-doc/examples/data/vtest.avi]

Takes ``--duration`` seconds from ``--start`` of the source (768x576, 10 frames/s, MPEG-4), scales it
to 640x480 (same 4:3 shape) and re-encodes it as H.264 (yuv420p, CRF 23), time stamps as in the
source. Uses PyAV, which vidstyle depends on anyway.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av

SOURCE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def cut(source: Path, out: Path, start: float, duration: float, width: int, height: int,
        crf: int) -> int:
    """Re-encode ``[start, start + duration)`` seconds of ``source`` into ``out``; frames written."""
    written = 0
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        rate = Fraction(vin.average_rate or 10).limit_denominator(1001)
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.time_base = 1 / rate
        vout.options = {"crf": str(crf), "preset": "slow"}
        for frame in src.decode(vin):
            t = float(frame.pts * vin.time_base)
            if t < start - 1e-6:
                continue
            if t >= start + duration - 1e-6:
                break
            picture = frame.reformat(width=width, height=height, format="yuv420p",
                                     interpolation="AREA")
            picture.pts, picture.time_base = written, vout.time_base
            dst.mux(vout.encode(picture))
            written += 1
        dst.mux(vout.encode(None))
    return written


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=here / "vtest_4s.mp4")
    parser.add_argument("--start", type=float, default=20.0, help="seconds into the source")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds")
    parser.add_argument("--crf", type=int, default=23)
    args = parser.parse_args(argv)
    n = cut(args.source, args.out, args.start, args.duration, 640, 480, args.crf)
    print(f"{args.out}: {n} frames, {args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
