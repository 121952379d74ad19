"""``vidstyle live``: stylize a camera, stream or file as it plays, into a window, a file or stdout."""

from __future__ import annotations

import argparse
import contextlib
import sys

from vidstyle.errors import VideoError
from vidstyle.infer.color import ColorOptions
from vidstyle.infer.inferconfig import EngineConfig

EPILOG = """\
examples:
  vidstyle live --model starry_night                         # webcam 0 in a window (q or Esc quits)
  vidstyle live --model the_wave --source 1 --size 640x360 --output webcam.mp4
  vidstyle live --model the_wave --source clip.mp4 --no-window --output - -q \\
      | ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -r FPS -i - out.mp4
When the network is slower than the source, frames are dropped to stay live; the file and stdout
outputs repeat the last stylized frame for each dropped one, so they keep real time."""
# The options' defaults are these dataclasses' own, as in `vidstyle infer`.
_ENGINE, _COLOR = EngineConfig(), ColorOptions()


def register(sub) -> None:
    p = sub.add_parser(
        "live", help="stylize a camera, stream or file live, into a window, a file or stdout",
        description="Stylize frames as they arrive from a camera (index 0, 1, ...), a stream URL or a "
                    "video file (played at its own frame rate), and show them in a window with the "
                    "frame rate, write them to a video file, or write raw rgb24 frames to stdout.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "-m", required=True, help="model name or path to a .safetensors file")
    p.add_argument("--source", default="0", help="camera index, video file or stream URL (default 0)")
    p.add_argument("--output", "-o", metavar="FILE|-",
                   help="also write a video file, or - for raw rgb24 frames on stdout")
    p.add_argument("--no-window", dest="window", action="store_false",
                   help="no window (for machines without a display)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N source frames")
    p.add_argument("--no-drop", dest="drop", action="store_false",
                   help="file sources: stylize every frame, as fast as the network goes, instead of "
                        "dropping frames to keep real time (the --output file then holds every frame "
                        "stylized; `vidstyle infer` does the same with the stabilizer and audio)")
    p.add_argument("--size", metavar="WxH", help="resize frames to WIDTHxHEIGHT first, e.g. 640x360")
    p.add_argument("--preserve-color", action="store_true", default=_COLOR.preserve_color,
                   help="keep the source's colours")
    p.add_argument("--strength", type=float, default=_COLOR.strength, metavar="A",
                   help="style strength 0..1")
    p.add_argument("--device", default=_ENGINE.device,
                   help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=_ENGINE.threads, metavar="N",
                   help="CPU threads for the network")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first (faster frames on CPU; compiles once)")
    p.add_argument("--quiet", "-q", action="store_true", help="no messages but errors")
    p.set_defaults(func=run_live_command)


def run_live_command(args) -> int:
    from vidstyle.cli.infer import print_names_as_stored
    from vidstyle.flow.precompute import parse_size
    from vidstyle.infer.live import FrameSource, RawSink, format_stats, run_live, source_kind
    from vidstyle.infer.stylize import Stylizer
    from vidstyle.infer.window import open_window
    from vidstyle.io.encode import VideoWriter, check_output_path
    from vidstyle.models.zoo import load_model

    def say(text: str) -> None:
        if not args.quiet:
            print(f"vidstyle: {text}", file=sys.stderr)

    print_names_as_stored()
    color = ColorOptions(preserve_color=args.preserve_color, strength=args.strength)
    if args.max_frames is not None and args.max_frames < 1:
        raise VideoError("--max-frames must be at least 1")
    size = parse_size(args.size)
    if args.output not in (None, "-"):   # infer's check: a folder that takes it, never the source
        check_output_path(args.output, source=args.source if source_kind(args.source) == "file" else None)
    window = open_window("vidstyle live") if args.window else None    # fail before loading anything
    try:
        model = load_model(args.model)
        stylizer = Stylizer(model.net, EngineConfig(device=args.device, threads=args.threads,
                                                    compile=args.compile))
        source = FrameSource(args.source, size=size, max_frames=args.max_frames, drop=args.drop)
    except BaseException:
        if window is not None:
            window.close()
        raise
    if stylizer.compiled:
        where = "GPU" if stylizer.plan.device.type == "cuda" else "CPU"
        say(f"compiling the network for this {where}, once, ~30 s (later runs reuse it)")
    with contextlib.ExitStack() as stack:
        sinks = []
        if args.output == "-":
            raw = RawSink()
            stack.callback(raw.flush)
            sinks.append(raw)
            width, height = source.frame_size
            say(f"raw rgb24 frames on stdout, {width}x{height} at {source.fps:g} frames/s: pipe into "
                f"ffmpeg -f rawvideo -pix_fmt rgb24 -s {width}x{height} -r {source.fps:g} -i - out.mp4")
        elif args.output:
            sinks.append(stack.enter_context(VideoWriter(args.output, source.fps)))
        stats = run_live(stylizer, source, sinks, window,
                         post_process=color.apply if color.changes_output else None)
    say(format_stats(stats, source) + (f"; wrote {args.output}" if args.output not in (None, "-") else ""))
    return 0
