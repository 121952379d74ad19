#!/usr/bin/env python3
"""Does int8 pay? onnxruntime static quantization of an exported model, speed and quality.

    python benchmarks/onnx_int8.py starwars_blue --calibrate ../clips/davis_bmx-trees.mp4 \\
        --clip ../clips/davis_dog.mp4 --style data/styles/poster_blue.jpg

Exports the model (float32), quantizes it statically (uint8 activations, int8 per-channel weights;
QDQ and QOperator formats) calibrated on every 10th frame of ``--calibrate`` (a clip the quality is
not measured on), then prints one row per file: the network's frames/s on a 640x360 frame (the files
alternated, median of ``--rounds``), the largest and mean absolute difference from the float32
export on the held-out ``--clip`` (first 40 frames at 320x180, RGB in [0, 1]), and that clip's
warping error E_warp and style loss (vidstyle.evaluate.metrics, as benchmarks/measure_model.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import common  # noqa: F401  (puts this checkout's vidstyle first on the path)


def to_batch(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1]."""
    return frame.transpose(2, 0, 1)[None].astype(np.float32) / 255.0


def quantize(fp32: Path, out: Path, calibration: list[np.ndarray], fmt: str) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"frames": to_batch(f)} for f in calibration])

        def get_next(self):
            return next(self.batches, None)

    prepared = out.with_suffix(".pre.onnx")
    here = os.getcwd()
    os.chdir(out.parent)   # the quantizer leaves scratch files in the working folder
    try:
        try:
            quant_pre_process(str(fp32), str(prepared))
        except Exception:   # the lite networks' padding defeats symbolic shape inference; ONNX's own suffices
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Frames(), per_channel=True,
                        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        os.chdir(here)
    return out


def main() -> int:
    import cv2

    from vidstyle.evaluate.metrics import Fidelity, MetricsConfig, evaluate
    from vidstyle.io.video import iter_frames
    from vidstyle.models.backends import OnnxRunner
    from vidstyle.models.export import export_onnx
    from vidstyle.models.zoo import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--calibrate", required=True, help="clip whose frames calibrate the ranges")
    parser.add_argument("--clip", required=True, help="held-out clip for the quality numbers")
    parser.add_argument("--style", required=True, help="the model's style image")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    model = load_model(args.model)
    calibration = [f for i, f in enumerate(iter_frames(args.calibrate, size=(640, 360))) if i % 10 == 0]
    held_out = np.stack(list(iter_frames(args.clip, size=(320, 180), max_frames=40)))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model.net, Path(tmp) / "fp32.onnx")
        files = {"float32": fp32,
                 "int8 QDQ": quantize(fp32, Path(tmp) / "qdq.onnx", calibration, "qdq"),
                 "int8 QOperator": quantize(fp32, Path(tmp) / "qop.onnx", calibration, "qop")}
        runners = {name: OnnxRunner(path) for name, path in files.items()}
    x = to_batch(calibration[0])
    speed: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            run(x)
            started = time.perf_counter()
            for _ in range(3):
                run(x)
            speed[name].append(3 / (time.perf_counter() - started))
    outputs = {name: np.concatenate([run(to_batch(f)) for f in held_out]) for name, run in runners.items()}
    stylized = [(name, np.clip(np.round(out.transpose(0, 2, 3, 1) * 255), 0, 255).astype(np.uint8))
                for name, out in outputs.items()]
    style = cv2.cvtColor(cv2.imread(args.style), cv2.COLOR_BGR2RGB)
    config = MetricsConfig(fidelity_every=10)
    report = evaluate(held_out, stylized, config=config, fidelity=Fidelity(style, config.style_size),
                      style_image=args.style)
    base = speed["float32"]
    print("| file | frames/s 640x360 | x float32 | max abs err | mean abs err | E_warp | style loss |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, out), metrics in zip(outputs.items(), report.videos[1:]):
        error = np.abs(out - outputs["float32"])
        fps = statistics.median(speed[name])
        print(f"| {name} | {fps:.2f} | {fps / statistics.median(base):.2f} | {error.max():.3f} | "
              f"{error.mean():.4f} | {metrics.e_warp:.5f} | {metrics.style_loss:.3g} |")
    print(f"# held-out {Path(args.clip).name}, 40 frames at 320x180; calibration "
          f"{Path(args.calibrate).name}, {len(calibration)} frames; speed: median of {args.rounds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
