"""Output of ``vidstyle metrics``: the plain table, the JSON document, the per-pair CSV and the plot.

Measuring lives in :mod:`vidstyle.evaluate.metrics` and :mod:`vidstyle.evaluate.consistency`; this module
only presents their reports (:class:`MetricsReport`, :class:`ConsistencyReport`).
:func:`check_report_paths` vets every output path before the (long) measurement starts.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from vidstyle import __version__
from vidstyle.errors import ConfigError
from vidstyle.evaluate.consistency import ConsistencyReport
from vidstyle.evaluate.definitions import DEFINITIONS
from vidstyle.evaluate.metrics import MetricsReport
from vidstyle.fsutil import atomic_output

JSON_FORMAT = "vidstyle-metrics/1"
CSV_FIELDS = ("t", "video", "e_warp", "luminance_change", "hf_change")

SUMMARY_COLUMNS = (     # (VideoMetrics field, table title, number format)
    ("e_warp", "E_warp", ".4g"),
    ("e_warp_ratio", "ratio", ".2f"),
    ("luminance_flicker", "lum flicker", ".4g"),
    ("hf_flicker", "HF flicker", ".4g"),
    ("style_loss", "style loss", ".4g"),
    ("content_loss", "content loss", ".4g"),
)
FIDELITY_FIELDS = ("style_loss", "content_loss")


def format_number(value: float | None, spec: str = ".4g") -> str:
    """A table cell: ``-`` when not measured, ``n/a`` when undefined (NaN)."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    return format(value, spec)


def format_table(report: MetricsReport) -> str:
    """A plain-text table, one row per video (input first), with the notes a reader needs."""
    columns = [c for c in SUMMARY_COLUMNS if c[0] not in FIDELITY_FIELDS or report.style_image]
    rows = [["video", *(title for _, title, _ in columns)]]
    for v in report.videos:
        label = f"{v.name} (input)" if v.is_input else v.name
        rows.append([label, *(format_number(getattr(v, key), spec) for key, _, spec in columns)])
    lines = [
        f"input: {report.input} ({report.width}x{report.height}, {report.num_frames} frames, "
        f"flow {report.flow_method}, mask keeps {100 * report.mask_fraction:.1f}% of pixels)",
        "",
        *align_table(rows),
        "",
    ]
    lines.append("E_warp: masked mean squared RGB error (0-1) of frame t-1 warped onto t with the "
                 "input's flow; ratio: E_warp / input's.")
    lines.append("lum flicker: mean |change| of mean luma per frame; HF flicker: mean relative change of "
                 "Laplacian energy per frame.")
    if report.style_image:
        lines.append(f"style/content loss: VGG-19 on one frame in {report.fidelity_every} "
                     f"({report.fidelity_frames} frames); style image {report.style_image} at "
                     f"{report.style_size} px longer side.")
    for v in report.videos:
        if v.resized_from:
            lines.append(f"note: {v.name} is {v.resized_from[0]}x{v.resized_from[1]}, resized to "
                         f"{report.width}x{report.height} for comparison.")
    return "\n".join(lines)


def align_table(rows: list[list[str]]) -> list[str]:
    """Lines of a plain table: first row the header, first column left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(row):
        return "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths)))

    return [line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])]


def _json_number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def report_to_dict(report: MetricsReport) -> dict:
    """The JSON document ``--json`` writes (format ``vidstyle-metrics/1``).

    Fields: ``format``, ``vidstyle_version``, ``input`` (path), ``width``, ``height`` (pixels),
    ``num_frames``, ``num_pairs``, ``flow`` {``method``, ``params``}, ``mask_fraction`` (mean share of
    pixels kept), ``fidelity`` (null without a style image, else {``style_image``, ``style_size``,
    ``every``, ``frames``}) and ``videos``: a list, input first, of {``name``, ``role`` ("input" or
    "stylized"), ``e_warp``, ``e_warp_ratio``, ``luminance_flicker``, ``hf_flicker``, ``style_loss``,
    ``content_loss``, ``resized_from`` ([width, height] or null), ``made_by`` (what the file says
    made it: {``model``, ``model_file``, ``network``, ``backend``, ``vidstyle``}, or null)}. Numbers
    that are undefined (no fidelity, no reliable pixel) are null.
    """
    fidelity = None
    if report.style_image:
        fidelity = {"style_image": report.style_image, "style_size": report.style_size,
                    "every": report.fidelity_every, "frames": report.fidelity_frames}
    return {
        "format": JSON_FORMAT,
        "vidstyle_version": __version__,
        "input": report.input,
        "width": report.width,
        "height": report.height,
        "num_frames": report.num_frames,
        "num_pairs": report.num_pairs,
        "flow": {"method": report.flow_method, "params": report.flow_params},
        "mask_fraction": _json_number(report.mask_fraction),
        "fidelity": fidelity,
        "videos": [
            {
                "name": v.name,
                "role": "input" if v.is_input else "stylized",
                "made_by": v.made_by,
                **{key: _json_number(getattr(v, key)) for key, _, _ in SUMMARY_COLUMNS},
                "resized_from": list(v.resized_from) if v.resized_from else None,
            }
            for v in report.videos
        ],
    }


def write_json(report: MetricsReport, path: str | Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report_to_dict(report), indent=2) + "\n")


def write_csv(report: MetricsReport, path: str | Path) -> None:
    """Per-pair curves, one row per (t, video): ``t, video, e_warp, luminance_change, hf_change``.

    t is the later frame of the pair (1 .. T-1); an empty e_warp means the mask kept no pixel.
    """
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for v in report.videos:
            for t, e, lum, hf in zip(report.t, v.e_warp_curve, v.luminance_change_curve, v.hf_change_curve):
                writer.writerow([t, v.name, "" if math.isnan(e) else f"{e:.6g}", f"{lum:.6g}", f"{hf:.6g}"])


def require_matplotlib():
    """The ``matplotlib.figure`` module, or ConfigError saying how to install it."""
    try:
        from matplotlib import figure
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'vidstyle[plot]' "
                          "(or pip install matplotlib)") from None
    return figure


CURVE_PANELS = (     # (VideoMetrics curve, axis title, y scale)
    # Log scale: a stylized video's E_warp is often many times its input's, which would flatten
    # the input.
    ("e_warp_curve", "E_warp", "log"),
    ("luminance_change_curve", "|change of mean luma|", "linear"),
    ("hf_change_curve", "relative change of HF energy", "linear"),
)


def draw_curves(axes: Sequence, report: MetricsReport) -> None:
    """Draw the three per-pair curves of ``report`` on three matplotlib axes, one line per video."""
    for ax, (key, title, scale) in zip(axes, CURVE_PANELS):
        for v in report.videos:
            style = {"color": "black", "linestyle": "--"} if v.is_input else {}
            ax.plot(report.t, getattr(v, key), label=Path(v.name).name, linewidth=1.2, **style)
        ax.set_ylabel(title)
        ax.set_yscale(scale)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("frame t (pair t-1, t)")
    axes[0].legend(fontsize="small")


def save_figure(fig, path: str | Path) -> None:
    """Write a matplotlib figure atomically; the format follows the extension of ``path``."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120)


def plot_report(report: MetricsReport, path: str | Path) -> None:
    """PNG (or any matplotlib format by extension) of the per-pair curves of every video."""
    figure = require_matplotlib()
    fig = figure.Figure(figsize=(9, 8), layout="constrained")
    axes = fig.subplots(len(CURVE_PANELS), 1, sharex=True)
    draw_curves(axes, report)
    fig.suptitle(f"temporal consistency: {Path(report.input).name}")
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------
# Definitions and gaps (vidstyle.evaluate.consistency)

CONSISTENCY_FORMAT = "vidstyle-consistency/1"
CONSISTENCY_CSV_FIELDS = ("gap", "t", "video", "definition", "value")


def _column(definition: str, gap: int) -> str:
    return f"{definition} K={gap}"


def _flow_line(report: ConsistencyReport) -> str:
    flow = report.flow
    if flow["source"] == "estimated":
        return f"flow: estimated ({flow['method']}) between input frames t and t+K"
    extra = "".join(f", {key} {flow[key]}" for key in ("occlusions", "invalid") if flow.get(key))
    return f"flow: ground truth {flow['flow']}{extra}; chained over K steps"


def format_consistency_table(report: ConsistencyReport) -> str:
    """One row per video (input first), one column per definition and gap, then pairs and kept pixels."""
    keys = [(d, k) for d in report.definitions for k in report.gaps]
    rows = [["video", *(_column(d, k) for d, k in keys)]]
    for v in report.videos:
        label = f"{v.name} (input)" if v.is_input else v.name
        rows.append([label, *(format_number(v.scores[key].value) for key in keys)])
    first = report.videos[0].scores
    rows.append(["pairs scored", *(str(first[key].pairs) for key in keys)])
    rows.append(["kept pixels %", *(format_number(100 * first[key].kept_fraction, ".1f") for key in keys)])
    lines = [f"input: {report.input} ({report.width}x{report.height}, {report.num_frames} frames); "
             f"{_flow_line(report)}", "", *align_table(rows), ""]
    lines += [f"{name}: {DEFINITIONS[name].formula}, {DEFINITIONS[name].paper}"
              for name in report.definitions]
    lines.append("SSE: sum over kept pixels and R, G, B of the squared difference (RGB 0-1) between frame t "
                 "and frame t+K warped onto it; N: kept pixels; P: all pixels.")
    for gap, count in report.unscored.items():
        if count:
            lines.append(f"note: {count} pairs at K={gap} have no ground-truth flow and are not scored.")
    for v in report.videos:
        if v.resized_from:
            lines.append(f"note: {v.name} is {v.resized_from[0]}x{v.resized_from[1]}, resized to "
                         f"{report.width}x{report.height} for comparison.")
    return "\n".join(lines)


def consistency_to_dict(report: ConsistencyReport) -> dict:
    """The JSON document (format ``vidstyle-consistency/1``).

    Fields: ``format``, ``vidstyle_version``, ``input``, ``width``, ``height``, ``num_frames``, ``flow``
    (``source`` "estimated" with ``method``, ``params``; or "ground truth" with ``flow``, ``occlusions``,
    ``invalid`` folders), ``definitions`` [{``name``, ``formula``, ``paper``}], ``gaps``, ``unscored``
    {gap: pairs without ground truth}, and ``videos``: input first, {``name``, ``role``, ``resized_from``,
    ``scores``: [{``definition``, ``gap``, ``value``, ``pairs``, ``kept_fraction``}]}. Undefined is null.
    """
    return {
        "format": CONSISTENCY_FORMAT,
        "vidstyle_version": __version__,
        "input": report.input,
        "width": report.width,
        "height": report.height,
        "num_frames": report.num_frames,
        "flow": report.flow,
        "definitions": [{"name": n, "formula": DEFINITIONS[n].formula, "paper": DEFINITIONS[n].paper}
                        for n in report.definitions],
        "gaps": report.gaps,
        "unscored": {str(k): v for k, v in report.unscored.items()},
        "videos": [
            {"name": v.name, "role": "input" if v.is_input else "stylized",
             "resized_from": list(v.resized_from) if v.resized_from else None,
             "scores": [{"definition": s.definition, "gap": s.gap, "value": _json_number(s.value),
                         "pairs": s.pairs, "kept_fraction": _json_number(s.kept_fraction)}
                        for s in v.scores.values()]}
            for v in report.videos
        ],
    }


def write_consistency_json(report: ConsistencyReport, path: str | Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(consistency_to_dict(report), indent=2) + "\n")


def write_consistency_csv(report: ConsistencyReport, path: str | Path) -> None:
    """Per-pair values, one row per (gap, t, video, definition); t is the later frame of the pair.

    ``value`` is the definition's per-pair term before aggregation (before the root, for the
    root-of-mean definitions); empty when the mask kept no pixel.
    """
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CONSISTENCY_CSV_FIELDS)
        for v in report.videos:
            for s in v.scores.values():
                for t, value in s.curve:
                    cell = "" if math.isnan(value) else f"{value:.6g}"
                    writer.writerow([s.gap, t, v.name, s.definition, cell])


# ---------------------------------------------------------------------------------------------------
# Output paths, vetted before any work

def check_report_paths(outputs: dict[str, str | None], inputs: Sequence[str | None]) -> None:
    """ConfigError unless every report path can be written and overwrites no input.

    ``outputs``: option name (``--json``) -> path or None; ``inputs``: every file or folder read. A
    report may not be an input (symlinks resolved), lie inside an input folder, repeat another
    report, or name a folder that does not exist or cannot be written.
    """
    read = [Path(p).resolve() for p in inputs if p]
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if not path:
            continue
        target = Path(path).resolve()
        if target in read or any(r.is_dir() and r in target.parents for r in read):
            raise ConfigError(f"{option} {path} would overwrite an input; write the report elsewhere")
        if target in seen:
            raise ConfigError(f"{option} and {seen[target]} both write {path}")
        seen[target] = option
        if target.is_dir():
            raise ConfigError(f"{option} {path} is a folder; give a file name")
        folder = target.parent
        if not folder.is_dir():
            raise ConfigError(f"{option} {path}: folder {Path(path).parent} does not exist")
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"{option} {path}: folder {Path(path).parent} is not writable")
