"""``vidstyle metrics INPUT STYLIZED...``: warping error, flicker and fidelity of stylized videos."""

from __future__ import annotations

import argparse

EPILOG = """\
what the columns mean (details: python -c "import vidstyle.metrics as m; help(m)"):
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
(--max-frames N compares the first N)."""


def register(sub) -> None:
    p = sub.add_parser(
        "metrics", help="temporal consistency (warping error, flicker) and fidelity of stylized videos",
        description="Compare stylized versions of a video with the original: how much they flicker\n"
                    "beyond what the original's motion explains and, with --style, how close they stay\n"
                    "to the style and to the content. One row per video, the original first.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="the original video (file or folder of numbered frames)")
    p.add_argument("stylized", nargs="+", metavar="STYLIZED", help="stylized versions of INPUT")
    p.add_argument("--flow", default="farneback", metavar="METHOD",
                   help="optical flow on INPUT: farneback (default), dis or deepflow")
    p.add_argument("--max-frames", type=int, metavar="N", help="compare only the first N frames")
    p.add_argument("--style", metavar="IMAGE", help="style image: adds style and content loss (VGG-19)")
    p.add_argument("--style-size", type=int, default=512, metavar="PX",
                   help="longer side of the style image for its Gram matrices (default 512)")
    p.add_argument("--fidelity-every", type=int, default=10, metavar="N",
                   help="style/content loss on frames 0, N, 2N, ... (default 10: VGG is slow on a CPU)")
    p.add_argument("--device", help="torch device for VGG-19 (default: cuda if available, else cpu)")
    p.add_argument("--json", metavar="OUT.json", help="write the table and settings as JSON")
    p.add_argument("--csv", metavar="OUT.csv", help="write per-frame curves as CSV")
    p.add_argument("--plot", metavar="OUT.png", help="plot the per-frame curves (needs matplotlib)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    from vidstyle import metrics

    if args.plot:
        metrics.require_matplotlib()    # fail before minutes of work, not after
    config = metrics.MetricsConfig(flow_method=args.flow, style_size=args.style_size,
                                   fidelity_every=args.fidelity_every, device=args.device)
    report = metrics.evaluate_videos(args.input, args.stylized, config=config, style_image=args.style,
                                     max_frames=args.max_frames, progress=not args.quiet)
    print(metrics.format_table(report))
    for path, write in ((args.json, metrics.write_json), (args.csv, metrics.write_csv),
                        (args.plot, metrics.plot_report)):
        if path:
            write(report, path)
            print(f"wrote {path}")
    return 0
