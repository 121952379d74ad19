"""``vidstyle train`` (and ``train_temporal.py``): train a temporally consistent style model."""

from __future__ import annotations

import argparse
import sys

from vidstyle.cli import quick
from vidstyle.errors import ConfigError

_S = argparse.SUPPRESS   # options not given stay out of the namespace, so --resume knows what changed


class _ConfigDefaults(argparse.HelpFormatter):
    """Fills "{default}" in help texts from TrainConfig, importing torch only when help is shown."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "{default}" in text:
            from vidstyle.training.trainconfig import TrainConfig

            text = text.replace("{default}", f"{getattr(TrainConfig(), action.dest)}")
        return text


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a style model on precomputed flow files (two-frame synergic training)",
        formatter_class=_ConfigDefaults,
        description="Train the stylizing network for one style image on pairs of consecutive frames "
                    "(flow files from 'vidstyle flows precompute') and optionally still photos. "
                    "Writes runs/NAME/: config.json, losses.csv, checkpoint.pt, previews/, and the "
                    "final model NAME.safetensors + NAME.json.")
    p.add_argument("--style", metavar="IMG", default=_S, help="style image")
    p.add_argument("--flows", nargs="+", metavar="DIR", default=_S, help="flow files or folders of them")
    p.add_argument("--photos", nargs="+", metavar="DIR", default=_S,
                   help="folders of photos used as extra content (pairs made by a random camera motion)")
    p.add_argument("--photo-fraction", type=float, metavar="F", default=_S,
                   help="share of photo pairs when mixing with --flows (default: by count)")
    p.add_argument("--name", default=_S, help="run name: output in runs/NAME/")
    p.add_argument("--runs", dest="runs_dir", metavar="DIR", default=_S, help="default: {default}/")
    p.add_argument("--net", default=_S, help="huang, johnson, lite or lite2 (default: {default})")
    p.add_argument("--init", metavar="MODEL", default=_S,
                   help="start from this trained model's weights (a name as for infer --model, or a "
                        ".safetensors path); its network must be --net's")
    p.add_argument("--steps", type=int, default=_S, help="optimizer steps (default: {default})")
    p.add_argument("--batch", type=int, default=_S, help="frame pairs per step and GPU (default: {default})")
    p.add_argument("--size", type=int, default=_S, help="training crop side, pixels (default: {default})")
    p.add_argument("--style-size", type=int, default=_S,
                   help="longer side of the style image, pixels (default: {default})")
    for term in ("content", "style", "tv", "temporal", "compound"):
        p.add_argument(f"--{term}-weight", type=float, default=_S, help="default: {default}")
    p.add_argument("--compound-shift", type=float, metavar="PX", default=_S,
                   help="largest random shift of the stability term, pixels (default: {default})")
    p.add_argument("--compound-noise", type=float, metavar="SD", default=_S,
                   help="pixel noise of the stability term, RGB 0-1 (default: {default})")
    p.add_argument("--shift-weight", type=float, metavar="W", default=_S,
                   help="the exact-shift stability term: the result of the frame moved by 0-3 whole "
                        "pixels must move with it, nothing resampled; 0 = off (default: {default})")
    p.add_argument("--luminance-temporal", action=argparse.BooleanOptionalAction, default=_S,
                   help="ReCoNet's luminance-aware temporal term: the input's own change of light "
                        "between the frames is not counted as flicker (default: off)")
    p.add_argument("--feature-temporal-weight", type=float, metavar="W", default=_S,
                   help="ReCoNet's temporal term on the network's bottleneck features; 0 = off "
                        "(default: {default})")
    p.add_argument("--tone", type=float, metavar="L", default=_S,
                   help="tone gate: output darkens where the input's local luma is below L; 0 = off "
                        "(default: {default})")
    p.add_argument("--lr", type=float, default=_S, help="Adam learning rate (default: {default})")
    p.add_argument("--seed", type=int, default=_S, help="default: {default}")
    p.add_argument("--device", default=_S, help="auto (default: cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=_S, help="CPU threads (default: torch's choice)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=_S,
                   help="channels_last memory format (default: on CUDA only; on CPU it measured no faster)")
    p.add_argument("--workers", type=int, default=_S,
                   help="data loader processes (default: up to 8 on GPU, 0 on CPU)")
    p.add_argument("--preview-every", type=int, default=_S, help="steps (default: {default})")
    p.add_argument("--checkpoint-every", type=int, default=_S, help="steps (default: {default})")
    p.add_argument("--log-every", type=int, default=_S, help="steps (default: {default})")
    p.add_argument("--max-minutes", type=float, metavar="M", default=_S,
                   help="stop after M minutes of training (this invocation): checkpoint and model are "
                        "written at the step reached; --resume goes on to --steps")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=_S, help="float32 on CUDA too")
    p.add_argument("--resume", action="store_true", help="continue runs/NAME from its checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start runs/NAME again from scratch: its checkpoint, log, previews and model are "
                        "removed, but only once the style image, flows and photos have been checked")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--describe", action="store_true", help="print the networks' parameter counts and exit")
    quick.add_arguments(p)
    p.set_defaults(func=cmd_train)


_FLAGS = ("resume", "overwrite", "quiet", "describe", "func", "command", "quick", "content")


def cmd_train(args: argparse.Namespace) -> int:
    from vidstyle.training.train import describe_nets, train
    from vidstyle.training.trainconfig import TrainConfig, resume_config

    if args.quick:
        return quick.cmd_quick(args)
    if args.content is not None:
        raise ConfigError("--content goes with --quick (a full run trains on --flows and --photos)")
    if args.describe:
        for line in describe_nets():
            print(line)
        return 0
    given = {k: v for k, v in vars(args).items() if k not in _FLAGS}
    if args.resume:
        if "name" not in given:
            raise ConfigError("--resume needs the --name of the run to continue")
        config = resume_config(given.get("runs_dir", TrainConfig.runs_dir), given.pop("name"), given)
    else:
        config = TrainConfig.from_dict(given)
    from vidstyle.cli.guard import guarded
    from vidstyle.training.runfiles import RunStopped

    try:
        with guarded():
            result = train(config, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    except RunStopped as stopped:
        print(f"vidstyle: {stopped}", file=sys.stderr)
        return 130
    losses = ", ".join(f"{k} {result.losses[k]:.4g}" for k in ("total", "content", "style", "temporal")
                       if k in result.losses)
    steps = f"{result.steps} step{'s' if result.steps != 1 else ''}"
    print(f"trained {steps} in {result.seconds:.0f} s ({losses})")
    if result.weights:
        print(f"model: {result.weights} (+ {result.weights.with_suffix('.json').name}); "
              f"previews in {result.run_dir / 'previews'}")
    return 0
