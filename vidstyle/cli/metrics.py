"""``vidstyle metrics INPUT STYLIZED...``: warping error, flicker and fidelity of stylized videos."""

from __future__ import annotations

import argparse

from vidstyle.evaluate.consistency import ConsistencyConfig
from vidstyle.evaluate.definitions import DEFINITIONS
from vidstyle.evaluate.metrics import MetricsConfig

DEFINITION_NAMES = tuple(DEFINITIONS)
# The options' defaults are these dataclasses' own, so that the command and the library agree.
_METRICS, _CONSISTENCY = MetricsConfig(), ConsistencyConfig()

EPILOG = """\
what the columns mean (details: python -c "import vidstyle.evaluate.metrics as m; help(m)"):
  E_warp       mean squared RGB error (RGB in 0-1) between frame t and frame t-1 warped onto it with
               the optical flow of INPUT, over pixels the occlusion/motion-boundary mask keeps
               (Lai et al. 2018). INPUT's own E_warp is the floor that flow error alone gives.
  ratio        E_warp / INPUT's E_warp.
  lum flicker  mean |change| of a frame's mean luma (0-1) from one frame to the next.
  HF flicker   mean relative change of a frame's high-frequency (Laplacian) energy.
  style loss   with --style: VGG-19 Gram loss (relu1_2..relu4_2) to the style image.
  content loss with --style: VGG-19 relu4_2 loss to the INPUT frame.

--json writes the table with its settings (format vidstyle-metrics/1); --csv writes per-frame curves
(t, video, e_warp, luminance_change, hf_change); --plot draws them (needs matplotlib).
Stylized videos of another size are resized to INPUT's; all videos need the same number of frames
(--max-frames N compares the first N).

--definition, --gap, --gt-flow: the temporal error as published papers define it (docs/metrics.md, "For
researchers"), between frames t and t+K, on INPUT's estimated flow or on ground-truth .flo files laid out
like MPI Sintel (frame_NNNN.flo: flow from frame NNNN to NNNN+1). Example:
  vidstyle metrics frames/ styled/ --gt-flow flow/ --gt-occlusions occlusions/ \\
      --definition vidstyle huang2017 --gap 1 10 --json m.json"""


DESCRIPTION = """\
Compare stylized versions of a video with the original: how much they flicker
beyond what the original's motion explains and, with --style, how close they stay
to the style and to the content. One row per video, the original first."""


def register(sub) -> None:
    p = sub.add_parser("metrics", description=DESCRIPTION, epilog=EPILOG,
                       help="temporal consistency (warping error, flicker) and fidelity of stylized videos",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="the original video (file or folder of numbered frames)")
    p.add_argument("stylized", nargs="+", metavar="STYLIZED", help="stylized versions of INPUT")
    p.add_argument("--flow", default=_METRICS.flow_method, metavar="METHOD",
                   help="optical flow on INPUT: farneback, dis or deepflow (default %(default)s)")
    p.add_argument("--max-frames", type=int, metavar="N", help="compare only the first N frames")
    p.add_argument("--style", metavar="IMAGE", help="style image: adds style and content loss (VGG-19)")
    p.add_argument("--style-size", type=int, default=_METRICS.style_size, metavar="PX",
                   help="longer side of the style image for its Gram matrices (default %(default)s)")
    p.add_argument("--fidelity-every", type=int, default=_METRICS.fidelity_every, metavar="N",
                   help="style/content loss on frames 0, N, 2N, ... (default %(default)s: VGG is slow on "
                        "a CPU)")
    p.add_argument("--device", default=_METRICS.device,
                   help="torch device for VGG-19 (default: cuda if available, else cpu)")
    p.add_argument("--json", metavar="OUT.json", help="write the table and settings as JSON")
    p.add_argument("--csv", metavar="OUT.csv", help="write per-frame curves as CSV")
    p.add_argument("--plot", metavar="OUT.png", help="plot the per-frame curves (needs matplotlib)")
    g = p.add_argument_group(
        "definitions, gaps and ground truth",
        "Any of these prints one temporal error per definition and gap instead of the table above.")
    g.add_argument("--definition", nargs="+", choices=list(DEFINITION_NAMES), metavar="NAME",
                   help=f"published formula(s): {', '.join(DEFINITION_NAMES)} "
                        f"(default {' '.join(_CONSISTENCY.definitions)}, the E_warp above)")
    g.add_argument("--gap", nargs="+", type=int, metavar="K",
                   help=f"compare frames t and t+K (default {' '.join(map(str, _CONSISTENCY.gaps))}); "
                        "several allowed, e.g. --gap 1 10")
    g.add_argument("--gt-flow", metavar="DIR",
                   help="ground-truth forward flows frame_NNNN.flo (MPI Sintel layout) "
                        "instead of estimated flow")
    g.add_argument("--gt-occlusions", metavar="DIR",
                   help="frame_NNNN.png, white where occluded (with --gt-flow)")
    g.add_argument("--gt-invalid", metavar="DIR", help="frame_NNNN.png, white where invalid (with --gt-flow)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_metrics)


def _consistency_mode(args: argparse.Namespace) -> bool:
    return bool(args.definition or args.gap or args.gt_flow or args.gt_occlusions or args.gt_invalid)


def _check_paths(args: argparse.Namespace) -> None:
    from vidstyle.evaluate import report

    report.check_report_paths(
        {"--json": args.json, "--csv": args.csv, "--plot": args.plot},
        [args.input, *args.stylized, args.style, args.gt_flow, args.gt_occlusions, args.gt_invalid])


def cmd_metrics(args: argparse.Namespace) -> int:
    from vidstyle.errors import ConfigError
    from vidstyle.evaluate import metrics, report

    _check_paths(args)
    if _consistency_mode(args):
        if args.style or args.plot:
            raise ConfigError("--style and --plot go with the default table, not with --definition, "
                              "--gap or --gt-flow; run the command twice")
        return _cmd_consistency(args)
    if args.plot:
        report.require_matplotlib()    # fail before minutes of work, not after
    config = MetricsConfig(flow_method=args.flow, style_size=args.style_size,
                           fidelity_every=args.fidelity_every, device=args.device)
    scores = metrics.evaluate_videos(args.input, args.stylized, config=config, style_image=args.style,
                                     max_frames=args.max_frames, progress=not args.quiet)
    print(report.format_table(scores))
    for path, write in ((args.json, report.write_json), (args.csv, report.write_csv),
                        (args.plot, report.plot_report)):
        if path:
            write(scores, path)
            print(f"wrote {path}")
    return 0


def _cmd_consistency(args: argparse.Namespace) -> int:
    from vidstyle.evaluate import consistency, report

    config = ConsistencyConfig(definitions=tuple(args.definition or _CONSISTENCY.definitions),
                               gaps=tuple(args.gap or _CONSISTENCY.gaps), flow_method=args.flow)
    scores = consistency.evaluate_consistency_paths(
        args.input, args.stylized, config=config, gt_flow=args.gt_flow, gt_occlusions=args.gt_occlusions,
        gt_invalid=args.gt_invalid, max_frames=args.max_frames, progress=not args.quiet)
    print(report.format_consistency_table(scores))
    for path, write in ((args.json, report.write_consistency_json), (args.csv, report.write_consistency_csv)):
        if path:
            write(scores, path)
            print(f"wrote {path}")
    return 0
