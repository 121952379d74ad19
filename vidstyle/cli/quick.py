"""``vidstyle train --quick`` (and ``train_temporal.py --quick``): a new style in minutes on a CPU.

The options are added to ``vidstyle train``'s parser by :func:`add_arguments`; the work is
:func:`vidstyle.training.quick.quick_train`, and the final check on a content clip is
:func:`vidstyle.evaluate.clipcheck.check_on_frames`.
"""

from __future__ import annotations

import argparse
import math
import time

from vidstyle.errors import ConfigError

# TrainConfig options a quick run takes too (the rest describe a full run: flows, steps, weights, ...).
_TAKES = ("style", "name", "runs_dir", "max_minutes", "size", "batch", "lr", "init", "seed", "device",
          "threads", "style_size", "style_weight")
_FLAGS = ("quick", "content", "resume", "overwrite", "quiet", "describe", "func", "command")
_STOPPED = {"budget": "time budget", "steps": "step limit", "interrupt": "interrupt (Ctrl-C or SIGTERM)"}
CHECK_FRAMES = 16          # frames of the content clip the final check stylizes and scores
CHECK_LONG_SIDE = 480      # pixels, the longer side of those frames


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="train within --max-minutes (default 15) on a CPU, from the shipped model whose "
                        "style is nearest --style; needs no flow files (see --content)")
    p.add_argument("--content", nargs="+", metavar="CLIP_OR_FOLDER",
                   help="with --quick: clips, frame folders, photos or folders of them to train on "
                        "(default: the sample clip and data/content/)")


def cmd_quick(args: argparse.Namespace) -> int:
    started = time.monotonic()   # the budget counts from here: loading torch is part of the wait
    from vidstyle.cli.guard import guarded
    from vidstyle.cli.infer import DEFAULT_STABILIZE
    from vidstyle.training.quick import QuickConfig, quick_train

    given = {k: v for k, v in vars(args).items() if k not in _FLAGS}
    other = sorted(set(given) - set(_TAKES))
    if other:
        raise ConfigError(f"--quick does not take {', '.join('--' + k.replace('_', '-') for k in other)}")
    if args.resume:
        raise ConfigError("--quick runs are not resumed: start again, or train with --init runs/NAME")
    for key in ("style", "name"):
        if key not in given:
            raise ConfigError(f"--quick needs --{key}")
    config = QuickConfig(**given, content=list(args.content or []), overwrite=args.overwrite)
    with guarded():   # SIGTERM as Ctrl-C: the loop stops and writes the model of the steps taken
        result = quick_train(config, check=lambda net, content: _check(net, config, DEFAULT_STABILIZE),
                             started=started, progress=not args.quiet)
    losses = ", ".join(f"{k} {result.losses[k]:.4g}" for k in ("content", "style", "temporal", "compound")
                       if k in result.losses)
    print(f"trained {result.steps} steps in {result.seconds:.0f} s ({losses}); stopped by the "
          f"{_STOPPED[result.stopped_by]}")
    print(f"model: {result.weights} (+ {result.weights.with_suffix('.json').name}); "
          f"previews in {result.run_dir / 'previews'}")
    print(f"use it: python infer.py clip.mp4 --model {config.name}")
    if result.check:
        c = result.check
        print(f"on {c['clip']}: E_warp {c['warping_error_ratio']:.2f}x the input's (target <= 3), style loss "
              f"{c['style_loss_ratio']:.2f} of the input's (target <= 0.35), black frame luma "
              f"{c['black_luma']:.3f} (target <= 0.12)")
    return 0


def _check(net, config, stabilize: float) -> dict | None:
    """The network scored on the first CHECK_FRAMES frames of the first content clip (else the sample
    clip), longer side at most CHECK_LONG_SIDE px; None when there is no clip."""
    from vidstyle.evaluate.clipcheck import check_on_frames
    from vidstyle.io.video import iter_frames, probe
    from vidstyle.training.quickdata import DEFAULT_CONTENT, find_content

    clips = find_content(config.content)[0] or [p for p in DEFAULT_CONTENT[:1] if p.is_file()]
    if not clips:
        return None
    info = probe(clips[0])
    width, height = info.size
    factor = min(1.0, CHECK_LONG_SIDE / max(width, height))
    size = (2 * math.ceil(width * factor / 2), 2 * math.ceil(height * factor / 2))
    frames = list(iter_frames(clips[0], size=size, max_frames=CHECK_FRAMES))
    return check_on_frames(net, frames, config.style, stabilize=stabilize, clip=clips[0].name,
                           fidelity_every=8)
