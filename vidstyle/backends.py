"""Where the network runs: PyTorch (eager or compiled) or onnxruntime on an ONNX export of it.

:func:`choose_backend` is the one rule for ``--backend auto``; :class:`OnnxRunner` runs an exported
file; :func:`cached_export` exports a network once and keeps the file, keyed by its weights, in
``$VIDSTYLE_CACHE`` (default ``~/.cache/vidstyle``) so later runs only load it.

onnxruntime and onnx are optional (``pip install "vidstyle[onnx]"``); they are imported only when a
file is exported or run, so a torch-only job does not pay for loading them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidstyle.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from torch import nn

BACKENDS = ("auto", "torch", "onnx")
CACHE_ENV_VAR = "VIDSTYLE_CACHE"
EXPORT_VERSION = 2   # part of the cache key: bump when the exported graph changes

# Below this much work (frames x pixels) on CPU, auto picks onnxruntime (when installed); from it on,
# compiled PyTorch. The network alone is faster compiled (benchmarks/backend_bench.py), but short
# whole jobs (benchmarks/infer_bench.py --whole) finish sooner with onnxruntime, where compiling and
# its start-up outweigh the faster frames. The numbers and the job lengths measured: README,
# "Backends, and the whole job against a per-frame peer".
ONNX_MAX_PIXELS = 300 * 640 * 360


def onnx_installed() -> bool:
    """Whether onnxruntime and onnx can be imported (without importing them)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None and find_spec("onnx") is not None


def choose_backend(requested: str, device_type: str, work_pixels: int | None,
                   onnx_ok: bool | None = None, exportable: bool = True) -> str:
    """"torch" or "onnx" for a job of ``work_pixels`` (frames x height x width; None if unknown).

    auto: PyTorch on CUDA, for long CPU jobs (compiled) and for jobs of unknown size (a Stylizer
    used as a library); onnxruntime for short CPU jobs when it is installed (``onnx_ok``, default:
    look) and the network can be exported (``exportable``: a vidstyle StyleNet). The same arguments
    always give the same answer.
    """
    if requested not in BACKENDS:
        raise ConfigError(f"unknown backend '{requested}' (use {', '.join(BACKENDS)})")
    onnx_ok = onnx_installed() if onnx_ok is None else onnx_ok
    if requested == "onnx":
        if device_type != "cpu":
            raise ConfigError("--backend onnx runs on the CPU only; use --device cpu or --backend torch")
        if not onnx_ok:
            raise ConfigError('--backend onnx needs onnxruntime and onnx: pip install "vidstyle[onnx]"')
        return "onnx"
    if requested == "torch" or device_type != "cpu" or not onnx_ok or not exportable:
        return "torch"
    return "onnx" if work_pixels is not None and work_pixels < ONNX_MAX_PIXELS else "torch"


class OnnxRunner:
    """An exported network in onnxruntime on the CPU: float32 (N, 3, H, W) -> float32 (N, 3, H, W).

    threads: intra-op threads (0: onnxruntime's default, one per core).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError('running ONNX files needs onnxruntime: pip install "vidstyle[onnx]"') from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Spinning worker threads starve the decoder and encoder threads on a busy CPU, as torch's
        # OpenMP threads do (see vidstyle/cli/infer.py): wait passively instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        # The arena keeps the peak's buffers and fragments across frames; without it a 1080p job
        # peaked lower (README, "Backends, and the whole job against a per-frame peer").
        options.enable_cpu_mem_arena = False
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = Path(path)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the network on a float32 (N, 3, H, W) batch, RGB in [0, 1]."""
        from vidstyle.export import MIN_SIDE

        if min(x.shape[-2:]) < MIN_SIDE:
            raise ModelError(f"the ONNX backend needs frames of at least {MIN_SIDE}x{MIN_SIDE} pixels, "
                             f"got {x.shape[-1]}x{x.shape[-2]}")
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def cache_dir() -> Path:
    """``$VIDSTYLE_CACHE`` or ``$XDG_CACHE_HOME/vidstyle`` (default ``~/.cache/vidstyle``)."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidstyle"


def weights_key(net: nn.Module) -> str:
    """A hex digest of the network's config and weights: equal for equal networks, whatever device."""
    digest = hashlib.sha256(json.dumps(getattr(net, "config", {}), sort_keys=True).encode())
    digest.update(f"export {EXPORT_VERSION}".encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().float().cpu().contiguous()
        digest.update(f"{name} {tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:20]


def cached_export(net: nn.Module, folder: str | os.PathLike | None = None) -> Path:
    """The ONNX export of ``net`` in the cache, made (and checked) on first use."""
    from vidstyle.export import export_onnx

    folder = Path(folder) if folder is not None else cache_dir() / "onnx"
    path = folder / f"{getattr(net, 'config', {}).get('name', 'net')}-{weights_key(net)}.onnx"
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the cache folder {folder} ({exc.strerror}); "
                          f"set ${CACHE_ENV_VAR} to a writable folder") from None
    return export_onnx(net, path)
