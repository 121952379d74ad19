"""``vidstyle flows precompute | inspect | show``: the flow files of the training data.

Argument parsing and printing only; the work is :mod:`vidstyle.flow.precompute` and
:mod:`vidstyle.flow.flowviz`.
The library modules are imported inside the commands, to keep ``vidstyle --help`` fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidstyle.errors import ConfigError, VideoError


def register(sub) -> None:
    flows = sub.add_parser("flows", help="precompute, inspect and view optical-flow files (HDF5)")
    commands = flows.add_subparsers(dest="flows_command", metavar="ACTION", required=True)

    p = commands.add_parser(
        "precompute", help="compute frames, flows and masks of video clips into one HDF5 file each",
        description="Find clips (video files or folders of numbered frames) under SRC, compute forward "
                    "and backward optical flow and the consistency mask of every consecutive pair, "
                    "and store each clip as OUT/<id>.h5. Finished files are skipped, so a rerun "
                    "resumes. Exit status 1 if some clips failed (see OUT/manifest.jsonl), "
                    "2 if no clip could be processed.")
    p.add_argument("sources", nargs="+", metavar="SRC", help="video files, frame folders, or folders of them")
    p.add_argument("--out", default="flows", help="output folder (default: flows/)")
    p.add_argument("--size", help="resize frames to WIDTHxHEIGHT first, e.g. 640x360 (default: keep)")
    p.add_argument("--method", default="farneback", help="farneback (default), dis or deepflow")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="flow method parameter, repeatable, e.g. --param winsize=15")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel clips (default and most: the CPUs this process may use)")
    p.add_argument("--shard", help="I/N: process only shard I of N (0-based), for N machines")
    p.add_argument("--max-frames", type=int, help="use at most this many frames of each clip")
    p.add_argument("--frame-step", type=int, default=1, metavar="K",
                   help="keep every K-th frame, so each pair is frames (t, t+K) of the clip: "
                        "longer-range pairs for training (default: 1)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_precompute)

    p = commands.add_parser("inspect", help="summarize and validate a flow file")
    p.add_argument("file", metavar="FILE.h5")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print nothing: validate only (exit 0 if valid, one-line error and 2 if not)")
    p.set_defaults(func=cmd_inspect)

    p = commands.add_parser("show", help="picture of one pair: frames, flows as colour wheel, mask")
    p.add_argument("file", metavar="FILE.h5")
    p.add_argument("--pair", type=int, default=0, metavar="T", help="pair index t (frames t, t+1)")
    p.add_argument("--out", required=True, metavar="X.png", help="image to write")
    p.add_argument("--quiet", "-q", action="store_true", help="no message when the image is written")
    p.set_defaults(func=cmd_show)


def _parse_params(items: list[str]) -> dict:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param takes KEY=VALUE, not {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def cmd_precompute(args: argparse.Namespace) -> int:
    from vidstyle.batchwork import parse_shard
    from vidstyle.cli.guard import guarded
    from vidstyle.device import cap_threads, usable_cores
    from vidstyle.flow.precompute import FlowJob, format_summary, parse_size, run_batch

    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    with guarded():     # the cap's warning as one line
        workers = cap_threads(args.workers, "--workers") or usable_cores()
    job = FlowJob(method=args.method, params=_parse_params(args.param), size=parse_size(args.size),
                  max_frames=args.max_frames, frame_step=args.frame_step)
    summary = run_batch(args.sources, args.out, job, workers=workers,
                        shard=parse_shard(args.shard), show_progress=not args.quiet)
    for line in format_summary(summary):
        print(line)
    print(f"flow files in {args.out}; log in {Path(args.out) / 'manifest.jsonl'}")
    failed = [r for r in summary.results if r.status == "failed"]
    if failed and len(failed) == len(summary.results):
        # Nothing usable came out: the input itself is bad, reported like any other bad input.
        more = f" (and {len(failed) - 1} more failed clips)" if len(failed) > 1 else ""
        raise VideoError(f"{failed[0].error}{more}")
    return 1 if failed else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from vidstyle.flow.flowviz import summarize

    info = summarize(args.file)
    if args.quiet:
        return 0
    if args.json:
        json.dump(info, sys.stdout, indent=2, default=str)
        print()
        return 0
    a = info["attrs"]
    print(f"{info['file']}: valid {a['format']} file, {info['bytes'] / 1e6:.1f} MB "
          f"({info['bytes_per_pair'] / 1e3:.0f} kB per pair)")
    print(f"  source      {a['source']}")
    step = int(a.get("frame_step", 1))       # files made before --frame-step have no such attribute
    every = f", one in {step} of the clip's frames: pairs (t, t+{step})" if step > 1 else ""
    print(f"  frames      {a['num_frames']} at {a['width']}x{a['height']}, {a['fps']:.3f} fps{every}")
    print(f"  flow        {a['flow_method']} {a['flow_params']}")
    print(f"  mean |flow| {info['mean_flow_pixels']:.2f} px; mask valid {100 * info['mean_mask_valid']:.1f}% "
          f"(min {100 * info['min_mask_valid']:.1f}%, median {100 * info['median_mask_valid']:.1f}%)")
    print(f"  cuts        {_count_and_list(info['cuts'], 'pair', 'pairs')}")
    print(f"  flat frames {_count_and_list(info['flat_frames'], 'frame', 'frames')}")
    print(f"  created     {a['created']} by vidstyle {a['vidstyle_version']}")
    return 0


def _count_and_list(indices: list[int], one: str, many: str, shown: int = 10) -> str:
    """``"2 pairs (0, 17)"``; long lists end in ``...``."""
    if not indices:
        return f"0 {many}"
    listed = ", ".join(map(str, indices[:shown])) + (", ..." if len(indices) > shown else "")
    return f"{len(indices)} {one if len(indices) == 1 else many} ({listed})"


def cmd_show(args: argparse.Namespace) -> int:
    from vidstyle.flow.flowviz import render_pair
    from vidstyle.io.images import write_image

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out must end in .png or .jpg, not {out.name!r}")
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: no such folder for --out")
    write_image(out, render_pair(args.file, args.pair))
    if not args.quiet:
        print(f"wrote {out}: frame t | frame t+1 | mask (top); "
              f"flow t->t+1 | flow t+1->t | frame t warped onto t+1 (bottom)")
    return 0
