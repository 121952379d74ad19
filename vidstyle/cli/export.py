"""`vidstyle export`: a model as an ONNX file, for running it without PyTorch."""

from __future__ import annotations

from pathlib import Path

from vidstyle.errors import ConfigError

DESCRIPTION = ("Write a named model (or a .safetensors file) as an ONNX file for onnxruntime or any "
               "ONNX runtime: input 'frames' float32 (N, 3, H, W) RGB in [0, 1], any N and H, W >= 5; "
               "output 'stylized', the same. The file is checked against PyTorch before it is written.")


def register(sub) -> None:
    p = sub.add_parser("export", help="write a model as an ONNX file", description=DESCRIPTION)
    p.add_argument("model", help="model name or path to a .safetensors file")
    p.add_argument("--onnx", type=Path, metavar="OUT.onnx",
                   help="the file to write (default: NAME.onnx in the current folder)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 11 to 20 (default 17)")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary line")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from vidstyle.models.backends import onnx_installed
    from vidstyle.models.export import OPSET, export_onnx
    from vidstyle.models.zoo import load_model

    if args.onnx is not None and args.onnx.suffix.lower() != ".onnx":
        raise ConfigError(f"--onnx must name a .onnx file, got {args.onnx}")
    if not onnx_installed():
        raise ConfigError('exporting needs onnx and onnxruntime: pip install "vidstyle[onnx]"')
    model = load_model(args.model)
    out = args.onnx if args.onnx is not None else Path(f"{model.entry.name}.onnx")
    path = export_onnx(model.net, out, model.card.to_dict(), opset=args.opset or OPSET)
    if not args.quiet:
        print(f"{path}: {model.entry.name} ({model.card.net_name} net), {path.stat().st_size / 1e6:.2f} MB, "
              f"matches PyTorch within 1e-3")
    return 0
