#!/usr/bin/env python3
"""Plot the loss terms of training runs side by side, from their ``runs/NAME/losses.csv``.

One panel per term (style, content, temporal, total), one line per run, each a moving average over
``--window`` logged rows, so that runs with different loss weights (for example a temporal-loss run
and its per-frame baseline) can be compared step by step. Prints, per run, the mean of each term
over the first and the last quarter of the logged steps.

    python benchmarks/training_curves.py runs/starry_night runs/starry_night_perframe --out curves.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)

TERMS = ("style", "content", "temporal", "total")


def read_losses(run: Path) -> dict[str, np.ndarray]:
    """Columns of ``run/losses.csv`` as float arrays (``step`` included)."""
    from vidstyle.training.runfiles import RunFiles

    files = RunFiles(run)
    rows = files.read_log()
    if not rows:
        raise SystemExit(f"training_curves: {files.losses} holds no logged steps")
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Means over ``window`` consecutive values: ``len(values) - window + 1`` of them."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


def quarters(values: np.ndarray) -> tuple[float, float]:
    """Mean over the first and the last quarter of the logged values."""
    q = max(1, len(values) // 4)
    return float(values[:q].mean()), float(values[-q:].mean())


def main() -> int:
    from vidstyle.evaluate.report import require_matplotlib, save_figure

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (runs/NAME)")
    parser.add_argument("--out", type=Path, default=Path("training_curves.png"))
    parser.add_argument("--window", type=int, default=5, help="moving average over this many logged rows")
    args = parser.parse_args()

    missing = [str(run) for run in args.runs if not (run / "losses.csv").is_file()]
    if missing:
        print(f"training_curves: no losses.csv in {', '.join(missing)}", file=sys.stderr)
        return 2
    logs = {run.name: read_losses(run) for run in args.runs}

    print("| run | steps | " + " | ".join(f"{t}: first quarter -> last" for t in TERMS) + " |")
    print("|---|---:|" + "---|" * len(TERMS))
    for name, log in logs.items():
        cells = ["{:.3g} -> {:.3g}".format(*quarters(log[t])) for t in TERMS]
        print(f"| {name} | {int(log['step'][-1])} | " + " | ".join(cells) + " |")

    figure = require_matplotlib()
    fig = figure.Figure(figsize=(9, 9), layout="constrained")
    axes = fig.subplots(len(TERMS), 1, sharex=True)
    for name, log in logs.items():
        window = max(1, min(args.window, len(log["step"])))
        for ax, term in zip(axes, TERMS):   # each average is plotted at the last step it covers
            ax.plot(log["step"][window - 1:], moving_average(log[term], window), label=name)
    for ax, term in zip(axes, TERMS):
        ax.set_ylabel(term + (" (unweighted)" if term != "total" else " (weighted)"))
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    axes[-1].set_xlabel("step")
    save_figure(fig, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
