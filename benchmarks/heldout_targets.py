#!/usr/bin/env python3
"""The shipped models against the quality targets, as ``python infer.py CLIP --model M`` makes them.

For every model and held-out clip, the default inference path (the network, then the stabilizer at
the default strength of ``vidstyle infer``) stylizes the first ``--max-frames`` frames; the result is
scored with :mod:`vidstyle.evaluate.metrics` (Farneback flow, unlike the stabilizer's DIS). Printed per model:

    E_warp / input's   median over clips (target <= 3)
    style / input's    the stylized frames' style loss over the unstylized input's, to the model's own
                       style image (data/styles/), median over clips (target <= 0.35)
    black luma         mean Rec. 601 luma of a black 640x360 frame's output (target <= 0.12)

    python benchmarks/heldout_targets.py --clips davis_dog.mp4 sam2_cups.mp4 sintel_ambush_3.mp4 \\
        [--models NAME ...] [--stabilize S] [--max-frames 40] [--start SECONDS] [--json out.json]

``--fast-check`` scores each fast (distilled) model beside its full model (the card's
``trained.distilled.teacher``) and says whether it keeps the full model's look: style ratio at most
1.10x the full model's and E_warp ratio at most 1.10x. It also prints the fast model's content loss
(VGG features against the input's, as in training) over the full model's, median over clips: the
style loss also falls when a network paints the style's colours over what the frame shows, and a
content ratio well above 1 says it did. ``--write-cards`` records that in the fast
model's card as ``metrics["fast_check"]`` (what ``--quality auto`` reads):

    python benchmarks/heldout_targets.py --fast-check --write-cards --max-frames 30 \\
        --clips davis_dog.mp4 sam2_cups.mp4 sintel_ambush_3.mp4 [--models starwars_blue_lite ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)
from vidstyle.cli.infer import DEFAULT_STABILIZE
from vidstyle.evaluate import metrics
from vidstyle.evaluate.clipcheck import black_luma, default_output
from vidstyle.infer.stylize import EngineConfig, Stylizer
from vidstyle.io.images import read_image
from vidstyle.io.video import iter_frames
from vidstyle.models.backends import model_file_key
from vidstyle.models.looks import teacher_of
from vidstyle.models.zoo import find_model, list_models, load_model, read_card, save_model

STYLES = Path(__file__).resolve().parent.parent / "data" / "styles"
TARGETS = {"ratio": 3.0, "style_ratio": 0.35, "black_luma": 0.12}
FAST_BOUND = 1.10   # a fast model keeps the look: both ratios at most this times its full model's


def score_model(name: str, clips: list[Path], args) -> dict:
    loaded = load_model(name)
    stylizer = Stylizer(loaded.net, EngineConfig(device="cpu", compile=False))
    style = STYLES / loaded.card.style_image
    fidelity = metrics.Fidelity(read_image(style, "style image"), 512, "cpu")
    per_clip = []
    for clip in clips:
        frames = list(iter_frames(clip, max_frames=args.max_frames, start=args.start))
        if not frames:
            raise SystemExit(f"{clip}: no frames from {args.start:g} s on")
        output = default_output(stylizer, frames, args.stabilize)
        report = metrics.evaluate(iter(frames), [(name, iter(output))],
                                  input_name=clip.name, fidelity=fidelity,
                                  config=metrics.MetricsConfig(fidelity_every=args.fidelity_every))
        source, result = report.videos
        per_clip.append({"clip": clip.stem, "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                         "frames": len(frames), "e_warp": result.e_warp, "ratio": result.e_warp_ratio,
                         "style_loss": result.style_loss, "input_style_loss": source.style_loss,
                         "style_ratio": result.style_loss / source.style_loss,
                         "content_loss": result.content_loss})
    return {"model": name, "file": file_key(name), "stabilize": args.stabilize, "start": args.start,
            "fidelity_every": args.fidelity_every, "clips": per_clip,
            "ratio": statistics.median(c["ratio"] for c in per_clip),
            "style_ratio": statistics.median(c["style_ratio"] for c in per_clip),
            "black_luma": black_luma(stylizer)}


def print_table(rows: list[dict]) -> None:
    print("| model | E_warp / input's (median) | per clip | style / input's (median) | per clip "
          "| black luma |")
    print("|---|---:|---|---:|---|---:|")
    for r in rows:
        clips = ", ".join(f"{c['ratio']:.2f}" for c in r["clips"])
        styles = ", ".join(f"{c['style_ratio']:.3f}" for c in r["clips"])
        print(f"| {r['model']} | {r['ratio']:.2f} | {clips} | {r['style_ratio']:.3f} | {styles} "
              f"| {r['black_luma']:.3f} |")
    print(f"targets: E_warp ratio <= {TARGETS['ratio']}, style ratio <= {TARGETS['style_ratio']}, "
          f"black luma <= {TARGETS['black_luma']}")


def fast_check(fast: dict, full: dict) -> dict:
    """The card's ``metrics["fast_check"]``: both models' median ratios over the same clips."""
    c = fast["clips"]
    which = (f"first {c[0]['frames']} frames" if not fast.get("start")
             else f"{c[0]['frames']} frames from {fast['start']:g} s")
    clips = (f"{', '.join(x['clip'] for x in c)}: {which} at "
             f"{', '.join(x['size'] for x in c)}; network then stabilizer {fast['stabilize']:g}")
    content = statistics.median(a["content_loss"] / b["content_loss"] for a, b in zip(c, full["clips"]))
    return {"clips": clips, "style_ratio": fast["style_ratio"], "style_ratio_full": full["style_ratio"],
            "ewarp_ratio": fast["ratio"], "ewarp_ratio_full": full["ratio"], "content_ratio": content}


def file_key(name: str) -> str:
    """The key of model ``name``'s file bytes and its card's network, read without building the
    network: scores are reused for this file only."""
    entry = find_model(name)
    return model_file_key(entry.weights, read_card(entry).net)


def same_setting(scores: dict, args, name: str) -> bool:
    """Whether ``scores`` were taken of model ``name``'s present file, on these clips, frames and
    stabilizer strength."""
    return (scores.get("file") == file_key(name)
            and [c["clip"] for c in scores["clips"]] == [clip.stem for clip in args.clips]
            and all("content_loss" in c for c in scores["clips"])
            and all(c["frames"] <= args.max_frames for c in scores["clips"])
            and scores.get("start", 0.0) == args.start
            and scores["stabilize"] == args.stabilize and scores.get("fidelity_every") == args.fidelity_every)


def meets(check: dict) -> bool:
    return (check["style_ratio"] <= FAST_BOUND * check["style_ratio_full"]
            and check["ewarp_ratio"] <= FAST_BOUND * check["ewarp_ratio_full"])


def write_fast_check(name: str, check: dict) -> None:
    """Rewrite the model's card (the .json and the copy in the weights' header) with ``check``."""
    loaded = load_model(name)
    card = dataclasses.replace(loaded.card, metrics={**loaded.card.metrics, "fast_check": check})
    print(f"wrote {save_model(loaded.net, loaded.entry.weights, card, dtype=torch.float16)}")


def run_fast_check(names: list[str], args) -> list[dict]:
    """Each fast model (a card with ``trained.distilled``) with its full model, as :func:`fast_check`."""
    pairs = [(name, teacher) for name in names if (teacher := teacher_of(read_card(find_model(name))))]
    scores: dict[str, dict] = {}
    if args.full_scores:   # the full models' scores from an earlier --fast-check --json on the same clips
        for row in json.loads(args.full_scores.read_text(encoding="utf-8")):
            scores[row["full"]] = row["scores_full"]
    for name in dict.fromkeys(m for pair in pairs for m in pair):
        if name not in scores or not same_setting(scores[name], args, name):
            scores[name] = score_model(name, args.clips, args)
    rows = []
    print(f"| fast model | full model | style / input's: fast, full | E_warp / input's: fast, full "
          f"| content: fast / full | within {FAST_BOUND:.2f}x |")
    print("|---|---|---:|---:|---:|---|")
    for name, teacher in pairs:
        check = fast_check(scores[name], scores[teacher])
        print(f"| {name} | {teacher} | {check['style_ratio']:.3f}, {check['style_ratio_full']:.3f} "
              f"| {check['ewarp_ratio']:.3f}, {check['ewarp_ratio_full']:.3f} "
              f"| {check['content_ratio']:.2f} | {meets(check)} |", flush=True)
        rows.append({"model": name, "full": teacher, "meets": meets(check), **check,
                     "scores": scores[name], "scores_full": scores[teacher]})
        if args.write_cards:
            write_fast_check(name, check)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--models", nargs="+", help="default: every model vidstyle finds")
    parser.add_argument("--stabilize", type=float, default=DEFAULT_STABILIZE)
    parser.add_argument("--max-frames", type=int, default=40)
    parser.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                        help="score the frames from this time on (default: the first ones)")
    parser.add_argument("--fidelity-every", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--fast-check", action="store_true",
                        help="score each fast (distilled) model beside its full model")
    parser.add_argument("--write-cards", action="store_true",
                        help="with --fast-check: record metrics.fast_check in each fast model's card")
    parser.add_argument("--full-scores", type=Path, metavar="JSON",
                        help="with --fast-check: the full models' scores from an earlier --json of it")
    parser.add_argument("--threads", type=int, help="torch and OpenCV threads (default: theirs)")
    args = parser.parse_args()
    if args.write_cards and args.start:
        parser.error("--write-cards records the check on the clips' first frames: leave out --start")
    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    names = args.models or [entry.name for entry in list_models()]
    if args.fast_check:
        rows = run_fast_check(names, args)
    else:
        rows = [score_model(name, args.clips, args) for name in names]
        print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
