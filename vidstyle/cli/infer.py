"""`vidstyle infer` (also ``python infer.py``) and `vidstyle models`."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from vidstyle.errors import VideoError

# Torch's OpenMP threads spin while they wait for each other. When any other thread wants the core
# (our decoder and encoder, or another program) the spinning starves it: measured on 2 busy cores,
# 0.7 frames/s spinning against 3.8 waiting passively. libgomp reads this once, when torch is first
# imported, which is after this module is (vidstyle.cli imports the commands in order); a value the
# user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def register(sub) -> None:
    p = sub.add_parser(
        "infer", help="stylize a video with a named model",
        description="Stylize a video file or folder of numbered frames with a named model, a model in "
                    "runs/ or $VIDSTYLE_MODELS, or a .safetensors file. Writes INPUT_STEM.MODEL.mp4 "
                    "beside the input unless -o is given. See `vidstyle models` for the names.")
    p.add_argument("input", help="video file or folder of numbered frames")
    p.add_argument("--model", "-m", required=True, help="model name or path to a .safetensors file")
    p.add_argument("-o", "--output", help="output video (default: INPUT_STEM.MODEL.mp4 beside the input)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--max-size", type=int, metavar="N",
                   help="shrink frames so their longest side is at most N pixels (output too)")
    p.add_argument("--batch-size", type=int, default=0, metavar="N",
                   help="frames per network call (default: 8 on CUDA, 1 on CPU)")
    p.add_argument("--lossless", action="store_true",
                   help="store the network's exact pixels (large files; libx264rgb, or ffv1 for .mkv)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    p.add_argument("--preset", default="veryfast",
                   help="x264 speed preset, ultrafast..veryslow: faster is larger (default veryfast)")
    p.add_argument("--start", type=float, default=0.0, metavar="S", help="start at S seconds")
    p.add_argument("--duration", type=float, metavar="S", help="stylize S seconds only")
    p.add_argument("--side-by-side", action="store_true", help="write input | output for comparison")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"),
                   help="run the network in PyTorch or in onnxruntime on its ONNX export (CPU; "
                        "exported once, then cached); auto: onnx for short CPU jobs when installed, "
                        "else torch")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network (default: on CPU for long jobs only; "
                        "falls back to eager if compiling fails)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads for the network (default: all cores)")
    p.add_argument("--fp32", action="store_true", help="on CUDA, run in float32 instead of float16")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run_infer)

    m = sub.add_parser("models", help="list the named models",
                       description="List the models --model accepts by name: user models "
                                   "($VIDSTYLE_MODELS, runs/) first, then the shipped ones.")
    m.add_argument("--all", action="store_true", help="also list models hidden by one of the same name")
    m.set_defaults(func=run_models)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"vidstyle: warning: {message}", file=sys.stderr)


def run_infer(args) -> int:
    from vidstyle.stylize import EngineConfig, InferOptions, default_output, stylize_video
    from vidstyle.zoo import load_model

    model = load_model(args.model)
    output = args.output or default_output(args.input, model.entry.name)
    engine = EngineConfig(device=args.device, batch_size=args.batch_size, compile=args.compile, threads=args.threads,
                          backend=args.backend,
                          half=False if args.fp32 else None)
    options = InferOptions(max_size=args.max_size, start=args.start, duration=args.duration,
                           lossless=args.lossless, crf=args.crf, preset=args.preset,
                           side_by_side=args.side_by_side)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        result = stylize_video(args.input, output, model.net, engine, options, progress=not args.quiet)
    how = f"{result.device}, {result.backend}{', compiled' if result.compiled else ''}"
    print(f"{result.output}: {result.frames} frames, {result.width}x{result.height}, model "
          f"{model.entry.name}, {result.seconds:.1f} s ({result.fps:.1f} frames/s, {how})")
    if result.truncated:
        raise VideoError(f"{result.truncated}; the {result.frames} frames that decode are stylized "
                         f"in {result.output}")
    return 0


def run_models(args) -> int:
    from vidstyle.zoo import ENV_VAR, describe, list_models, model_folders

    rows = describe(list_models(include_shadowed=args.all))
    for row in rows:
        print(f"{row['name']}  ({row['source']}, {row['net']} net)  {row['path']}")
        print(f"    style image: {row['style_image']}")
        print(f"    {row['description']}")
    if not rows:
        print("no models found")
    searched = ", ".join(str(folder) for _, folder in model_folders())
    print(f"searched: {searched} (add folders with ${ENV_VAR})")
    print("your own style under a shipped name (e.g. your own poster as starwars_blue):\n"
          "    python train_temporal.py --style my_poster.jpg --flows flows/ --name starwars_blue\n"
          "writes runs/starwars_blue/, which then takes the place of the shipped model (run from here)")
    return 0
