"""`vidstyle infer` (also ``python infer.py``) and `vidstyle models`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vidstyle.cli.guard import guarded
from vidstyle.errors import VideoError
from vidstyle.infer.color import ColorOptions
from vidstyle.infer.inferconfig import CUDA_BATCH, EngineConfig, InferOptions
from vidstyle.models.backends import BACKENDS
from vidstyle.models.looks import QUALITIES

# The command's stabilizer strength; the library's InferOptions leaves it off. Chosen on held-out
# clips (README, Inference: the stabilizer's effect and cost).
DEFAULT_STABILIZE = 0.6
# The options' defaults are these dataclasses' own, so that the command and the library agree.
_ENGINE, _OPTIONS, _COLOR = EngineConfig(), InferOptions(), ColorOptions()


def register(sub) -> None:
    p = sub.add_parser(
        "infer", help="stylize videos and photos with a named model",
        description="Stylize videos, photos, folders of numbered frames, or folders of them, with a "
                    "named model, a model in runs/ or $VIDSTYLE_MODELS, or a .safetensors file. "
                    "Writes INPUT_STEM.MODEL.mp4 (photos: INPUT_STEM.MODEL.png) beside each input "
                    "unless -o is given. With several inputs or a folder, a bad file is reported "
                    "and skipped, and the exit status is 1 if any failed. See `vidstyle models` for "
                    "the names.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video file, photo, folder of numbered frames, or folder of these")
    p.add_argument("--model", "-m", required=True, help="model name or path to a .safetensors file")
    p.add_argument("-o", "--output",
                   help="output file (.mp4/.mov/.mkv/.webm for a video, .png/.jpg/.webp for a photo), or a "
                        "folder for several inputs (default: beside each input)")
    p.add_argument("--device", default=_ENGINE.device,
                   help="auto (CUDA if available), cpu, cuda or cuda:N (default %(default)s)")
    p.add_argument("--max-size", type=int, metavar="N",
                   help="shrink frames so their longest side is at most N pixels (output too)")
    p.add_argument("--batch-size", type=int, default=_ENGINE.batch_size, metavar="N",
                   help=f"frames per network call (default: {CUDA_BATCH} on CUDA, 1 on CPU)")
    p.add_argument("--lossless", action="store_true", default=_OPTIONS.lossless,
                   help="store the network's exact pixels (large files; libx264rgb, or ffv1 for .mkv)")
    p.add_argument("--crf", type=int, default=_OPTIONS.crf,
                   help="H.264 quality, lower is better (default %(default)s; .webm: VP9 at this + 8)")
    p.add_argument("--preset", default=_OPTIONS.preset,
                   help="x264 speed preset, ultrafast..veryslow: faster is larger (default %(default)s)")
    p.add_argument("--start", type=float, default=_OPTIONS.start, metavar="S", help="start at S seconds")
    p.add_argument("--duration", type=float, default=_OPTIONS.duration, metavar="S",
                   help="stylize S seconds only")
    p.add_argument("--side-by-side", action="store_true", default=_OPTIONS.side_by_side,
                   help="write input | output for comparison")
    p.add_argument("--stabilize", type=float, default=DEFAULT_STABILIZE, metavar="S",
                   help="flow-guided stabilizer strength in [0, 1): blend in the previous result, "
                        "carried by the motion, where the flow is reliable; "
                        f"0 = off (default {DEFAULT_STABILIZE})")
    p.add_argument("--quality", default="auto", choices=QUALITIES,
                   help="which of a style's networks runs: full (the trained model), fast (its lite "
                        "network, if it has one), auto (default: on a CPU the fast network when its "
                        "card shows it keeps the full model's look, else the full one)")
    p.add_argument("--backend", default=_ENGINE.backend, choices=BACKENDS,
                   help="run the network in PyTorch or in onnxruntime on its ONNX export (CPU; "
                        "exported once, then cached); auto: onnx for short CPU jobs when installed, "
                        "else torch")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=_ENGINE.compile,
                   help="torch.compile the network (default: on CPU for long jobs only; "
                        "falls back to eager if compiling fails)")
    p.add_argument("--threads", type=int, default=_ENGINE.threads, metavar="N",
                   help="CPU threads for the network (default: all cores)")
    p.add_argument("--streams", type=int, default=_ENGINE.streams, metavar="N",
                   help="onnx backend: frames the network works on at once, each with its share of "
                        "--threads (default: 2 with 2 threads or more)")
    p.add_argument("--fp32", action="store_true", help="on CUDA, run in float32 instead of float16")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or compile notice")
    _add_batch_and_color_options(p)
    p.set_defaults(func=run_infer)

    m = sub.add_parser("models", help="list the named models",
                       description="List the models --model accepts by name: user models "
                                   "($VIDSTYLE_MODELS, runs/) first, then the shipped ones.")
    m.add_argument("--all", action="store_true", help="also list models hidden by one of the same name")
    m.add_argument("--quiet", "-q", action="store_true", help="the names only, one per line")
    m.add_argument("--long", "-l", action="store_true",
                   help="every model file with its card: network, style image, description, path")
    m.add_argument("--json", action="store_true",
                   help="print a JSON list of the models with their card fields (unusable ones with "
                        "\"error\") instead of the text listing")
    m.set_defaults(func=run_models)


def _add_batch_and_color_options(p) -> None:
    p.add_argument("--preserve-color", action="store_true", default=_COLOR.preserve_color,
                   help="keep the input's colours, take only the style's light and dark (luma)")
    p.add_argument("--strength", type=float, default=_COLOR.strength, metavar="A",
                   help="blend A of the stylized frame with 1-A of the input, 0..1 (default %(default)g)")
    p.add_argument("--shard", metavar="I/N",
                   help="stylize only shard I of N (0-based, stable by input path), for N machines")
    p.add_argument("--json", action="store_true",
                   help="print a machine-readable summary (JSON) on stdout instead of the text lines")


def print_names_as_stored() -> None:
    """Let stdout and stderr print file names that are not valid UTF-8 (``bad\\xff.mp4``) as their
    bytes, as ``ls`` does, instead of failing on them (Python's strict default in UTF-8 locales)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")


def run_infer(args) -> int:
    from vidstyle.batchwork import BatchSummary, parse_shard
    from vidstyle.infer.batch import (
        find_inputs,
        format_result,
        format_summary,
        plan_outputs,
        run_item,
        run_items,
        take_shard,
    )
    from vidstyle.infer.engine import check_engine_config
    from vidstyle.infer.engines import StylizerPool
    from vidstyle.infer.inferconfig import check_options
    from vidstyle.models.lazymodel import open_model

    print_names_as_stored()
    color = ColorOptions(preserve_color=args.preserve_color, strength=args.strength)
    shard = parse_shard(args.shard)
    engine = EngineConfig(device=args.device, batch_size=args.batch_size, compile=args.compile,
                          threads=args.threads, streams=args.streams, backend=args.backend,
                          half=False if args.fp32 else _ENGINE.half)
    options = InferOptions(max_size=args.max_size, start=args.start, duration=args.duration,
                           lossless=args.lossless, crf=args.crf, preset=args.preset,
                           side_by_side=args.side_by_side, stabilize=args.stabilize,
                           post_process=color.apply if color.changes_output else None)
    check_options(options)
    check_engine_config(engine, cuda=args.device.startswith("cuda"))   # once, before any input
    # torch is loaded here only if the job runs on it (an export otherwise runs in a child process).
    notice = None if args.quiet else (lambda text: print(f"vidstyle: {text}", file=sys.stderr))
    model = open_model(args.model, backend=args.backend, quality=args.quality, device=args.device,
                       notify=notice)
    items, ignored = find_inputs(args.inputs, model.look)
    # One input named directly keeps the one-job behaviour: any problem is an error (exit 2).
    single = len(args.inputs) == 1 and len(items) == 1 and items[0].path == Path(args.inputs[0]) \
        and args.shard is None
    if not items:
        raise VideoError(f"no videos or photos found in {', '.join(args.inputs)}")
    items = plan_outputs(take_shard(items, shard), model.look, args.output, batch=not single,
                         run_inputs=items)
    pool = StylizerPool(model, engine, notify=notice)
    summary = BatchSummary(ignored=[str(p) for p in ignored])
    started = time.perf_counter()
    with guarded():
        results = [run_item(items[0], pool, options, not args.quiet)] if single \
            else run_items(items, pool, options, not args.quiet)
        for result in results:
            summary.results.append(result)
            if result.status == "failed" and not single:
                print(f"vidstyle: {format_result(result, model.look)}", file=sys.stderr)
            elif not args.json:
                print(format_result(result, model.look))
    summary.seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"model": model.look, "network": {"model": model.name, "net": model.network,
                                                           "quality": args.quality},
                          **summary.to_dict()}, indent=2))
    if single and summary.results[0].status == "failed":
        result = summary.results[0]
        raise VideoError(f"{result.error}; the {result.frames} frames that decode are stylized "
                         f"in {result.output}")
    if not single and not args.json:
        print(format_summary(summary))
    return 1 if summary.count("failed") else 0


def _print_looks(records: list[dict]) -> None:
    """One line per style: its name, its networks (the fast one marked), where it comes from, and the
    first words of its description."""
    from vidstyle.models.looks import first_sentence

    rows = []
    for record in records:
        nets = []
        for network in record["networks"]:
            if network["role"] == "full":
                nets.append(network["net"])
            else:
                kept = "keeps the look" if network["keeps_look"] else "not within bounds"
                nets.append(f"fast {network['net']} ({kept})")
        source = "" if record["source"] == "shipped" else f"[{record['source']}] "
        about = record["description"] if not nets else first_sentence(record["description"], 60)
        rows.append((record["name"], " + ".join(nets) or "?", source + about))
    widths = [max((len(row[i]) for row in rows), default=0) for i in (0, 1)]
    for name, nets, about in rows:
        print(f"{name:<{widths[0]}}  {nets:<{widths[1]}}  {about}".rstrip())
    print("--model NAME takes a style; --quality fast|full|auto picks its network (auto: the fast one on "
          "a CPU when it keeps the look). `vidstyle models --long` for each model's card.")


def run_models(args) -> int:
    from vidstyle.models.looks import describe, looks, model_records
    from vidstyle.models.zoo import ENV_VAR, list_models, model_folders

    entries = list_models(include_shadowed=args.all)
    if args.json:
        print(json.dumps(model_records(entries), indent=2))
        return 0
    rows = describe(entries)
    if args.quiet:
        print("\n".join(row["name"] for row in rows))
        return 0
    if args.long:
        for row in rows:
            print(f"{row['name']}  ({row['source']}, {row['net']} net)  {row['path']}")
            print(f"    style image: {row['style_image']}")
            print(f"    {row['description']}")
    else:
        _print_looks(looks())
    if not rows:
        print("no models found")
    searched = ", ".join(str(folder) for _, folder in model_folders())
    print(f"searched: {searched} (add folders with ${ENV_VAR})")
    print("your own style under a shipped name (e.g. your own poster as starwars_blue):\n"
          "    python train_temporal.py --style my_poster.jpg --flows flows/ --name starwars_blue\n"
          "writes runs/starwars_blue/, which then takes the place of the shipped model (run from here)")
    return 0
