"""Where the network runs: PyTorch (eager or compiled) or onnxruntime on an ONNX export of it.

:func:`choose_backend` is the one rule for ``--backend auto``; :class:`OnnxRunner` runs an exported
file; :func:`cached_export` exports a network once and keeps the file, keyed by its weights, in
``$VIDSTYLE_CACHE`` (default ``~/.cache/vidstyle``) so later runs only load it.

None of this imports torch: :func:`model_file_key` keys a model file's export by the file's bytes and
:func:`device_type` answers ``--device auto`` without torch where no GPU can be there, so a job whose
export is cached runs without loading torch (:mod:`vidstyle.models.lazymodel`).

onnxruntime and onnx are in the base install, and still checked for (an environment may lack them);
they are imported only when a file is exported or run, so a torch-only job does not pay for loading
them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidstyle.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from torch import nn

BACKENDS = ("auto", "torch", "onnx")
CACHE_ENV_VAR = "VIDSTYLE_CACHE"
EXPORT_VERSION = 2   # part of the cache key: bump when the exported graph changes
MIN_SIDE = 5         # smallest side the exported graph takes: its reflection pad of up to 3 pixels

# Below this much work (frames x pixels) on CPU, auto picks onnxruntime (when installed); from it on,
# compiled PyTorch. The network alone is faster compiled (benchmarks/backend_bench.py), but short
# whole jobs (benchmarks/infer_bench.py --whole) finish sooner with onnxruntime, where compiling and
# its start-up outweigh the faster frames. The numbers and the job lengths measured: docs/backends.md,
# "Whole jobs against a per-frame peer".
ONNX_MAX_PIXELS = 300 * 640 * 360
# Networks for which onnxruntime is the faster CPU backend at any job length: the lite network's
# separable convolutions run faster there than compiled PyTorch, which also pays the import of
# torch and a compile (docs/training.md, "Fast models").
ONNX_ALWAYS = frozenset({"lite", "lite2"})


def onnx_installed() -> bool:
    """Whether onnxruntime and onnx can be imported (without importing them)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None and find_spec("onnx") is not None


def choose_backend(requested: str, device_type: str, work_pixels: int | None,
                   onnx_ok: bool | None = None, exportable: bool = True, network: str | None = None) -> str:
    """"torch" or "onnx" for a job of ``work_pixels`` (frames x height x width; None if unknown).

    auto: PyTorch on CUDA, for long CPU jobs (compiled) and for jobs of unknown size (a Stylizer
    used as a library); onnxruntime for short CPU jobs when it is installed (``onnx_ok``, default:
    look) and the network can be exported (``exportable``: a vidstyle network); for CPU jobs of any
    known size when the network (its name, ``network``) is in ONNX_ALWAYS. The same arguments always
    give the same answer.
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
    if work_pixels is None:
        return "torch"
    return "onnx" if work_pixels < ONNX_MAX_PIXELS or network in ONNX_ALWAYS else "torch"


def device_type(spec: str | None) -> str:
    """"cpu" or "cuda": the type of the device :func:`vidstyle.device.resolve_device` gives ``spec``
    (``--device``), without importing torch when it is the CPU for sure: "cpu", or "auto" where no
    CUDA or ROCm GPU can be seen (see :func:`_gpu_possible`). Otherwise torch decides."""
    if spec == "cpu" or (spec in (None, "auto") and not _gpu_possible()):
        return "cpu"
    from vidstyle.device import resolve_device

    return resolve_device(spec).type


def _gpu_possible() -> bool:
    """False when torch cannot see a GPU: torch not installed, a CPU-only build (no CUDA or ROCm
    library beside it), or on Linux no NVIDIA or AMD GPU device node. True means "ask torch"."""
    from importlib.util import find_spec

    spec = find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    libraries = Path(spec.origin).parent / "lib"
    if not any(libraries.glob("*torch_cuda*")) and not any(libraries.glob("*torch_hip*")):
        return False
    if sys.platform.startswith("linux"):
        return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()
    return True


class OnnxRunner:
    """An exported network in onnxruntime on the CPU: float32 (N, 3, H, W) -> float32 (N, 3, H, W).

    threads: intra-op threads (0: onnxruntime's default, one per core).
    lean: optimize the graph at onnxruntime's basic level only, for large frames. The full level
    converts the convolutions to a blocked layout that pads 8 channels to 16 and adds a copy of the
    feature map on each side of every conversion: one 1080p frame of the lite network peaked at 814 MB
    with it and 407 MB without, for about 10% of the speed (docs/backends.md, "Memory at 1080p"). The
    lean session also runs without onnxruntime's memory arena.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 0, lean: bool = False):
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
        # onnxruntime's arena keeps a run's buffers for the next one. At 640x360 it made two lite2
        # streams 1.5x faster (without it each frame faulted in about 10,600 fresh pages, 21 ms of
        # kernel time against 48 ms of the network's own). In the lean 1080p session it also made
        # the job 1.2x faster, but the job peaked at 860 MB against 660 MB, over the 800 MB
        # target, so that session goes without (docs/backends.md, "Memory at 1080p").
        options.enable_cpu_mem_arena = not lean
        if lean:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = Path(path)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the network on a float32 (N, 3, H, W) batch, RGB in [0, 1]."""
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ModelError(f"the ONNX backend needs frames of at least {MIN_SIDE}x{MIN_SIDE} pixels, "
                             f"got {x.shape[-1]}x{x.shape[-2]}")
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def cache_dir() -> Path:
    """``$VIDSTYLE_CACHE`` or ``$XDG_CACHE_HOME/vidstyle`` (default ``~/.cache/vidstyle``)."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "vidstyle"
    # An empty HOME counts as unset (Path.home() would give "/"): the account's own home instead.
    home = os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    return Path(home) / ".cache" / "vidstyle"


def weights_key(net: nn.Module) -> str:
    """A hex digest of the network's config and weights: equal for equal networks, whatever device."""
    digest = hashlib.sha256(json.dumps(getattr(net, "config", {}), sort_keys=True).encode())
    digest.update(f"export {EXPORT_VERSION}".encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().float().cpu().contiguous()
        digest.update(f"{name} {tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:20]


def model_file_key(weights: str | os.PathLike, net_config: Mapping[str, Any]) -> str:
    """A hex digest of a model file's bytes and its card's network, read without torch: equal for
    the same file and card, whatever its path. (Differs from :func:`weights_key` of the same
    network, so one model may be cached under both keys; each export is about as large as the
    model file.)"""
    digest = hashlib.sha256(json.dumps(dict(net_config), sort_keys=True).encode())
    digest.update(f"export {EXPORT_VERSION} file".encode())
    try:
        with open(weights, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ModelError(f"cannot read the model file {weights} ({exc.strerror})") from None
    return digest.hexdigest()[:20]


def export_path(name: str, key: str, folder: str | os.PathLike | None = None) -> Path:
    """Where the export of a network called ``name`` with ``key`` lives: ``FOLDER/NAME-KEY.onnx``
    (default folder: the cache's ``onnx/``). The file may not exist yet."""
    folder = Path(folder) if folder is not None else cache_dir() / "onnx"
    return folder / f"{name}-{key}.onnx"


class CacheUnwritable(ConfigError):
    """The export cache cannot take a new file (no folder, a full disk): where onnxruntime was only
    the faster choice, the job runs on PyTorch instead (:class:`vidstyle.infer.engines.StylizerPool`)."""


def cached_export(net: nn.Module, folder: str | os.PathLike | None = None, *, name: str | None = None,
                  key: str | None = None, card: Mapping[str, Any] | None = None) -> Path:
    """The ONNX export of ``net`` in the cache, made (and checked) on first use. ``name`` and
    ``key`` name the file (default: the network's config name and :func:`weights_key`); ``card``
    goes into a new file's metadata. CacheUnwritable when the file cannot be written there."""
    from vidstyle.models.export import ExportWriteError, export_onnx

    path = export_path(name or getattr(net, "config", {}).get("name", "net"),
                       key or weights_key(net), folder)
    if path.is_file():
        return path
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheUnwritable(f"cannot create the cache folder {folder} ({exc.strerror}); "
                              f"set ${CACHE_ENV_VAR} to a writable folder") from None
    try:
        return export_onnx(net, path, card)
    except ExportWriteError as exc:
        raise CacheUnwritable(f"the export cache is full or unwritable: {exc} (set ${CACHE_ENV_VAR} "
                              "to a folder with room)") from None
