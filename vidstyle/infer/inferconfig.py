"""The settings of an inference job, apart from the engine that runs it: no torch, so the command
line takes its defaults from here without loading it.

:class:`EngineConfig` says how to run the network (resolved per device by
:func:`vidstyle.infer.stylize.plan`); :class:`InferOptions` what to make of the input;
:func:`check_options` refuses settings no input can satisfy, before any work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidstyle.errors import ConfigError

CUDA_BATCH = 8   # frames a network call when EngineConfig.batch_size is 0, on CUDA (CPU: 1)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow")


@dataclass
class EngineConfig:
    """How to run the network. ``None`` and 0 mean "decide from the device" (see
    :func:`vidstyle.infer.stylize.plan`).

    device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N". batch_size: frames per
    network call. half: fp16 (CUDA only). compile: torch.compile the network, falling back to eager
    if compiling fails. threads: CPU threads for the network (0: torch's default, one per physical
    core). queue_depth: frames or batches each stage may run ahead of the next. backend: "torch",
    "onnx" (onnxruntime on the network's ONNX export, CPU only) or "auto" (see
    :func:`vidstyle.models.backends.choose_backend`). streams: on the onnx backend, batches the network
    works on at once, each in its own onnxruntime session with its share of the threads (0: two
    when there are two threads or more; see :func:`vidstyle.infer.onnxengine.split_threads`).
    """

    device: str = "auto"
    batch_size: int = 0
    half: bool | None = None
    compile: bool | None = None
    threads: int = 0
    queue_depth: int = 4
    backend: str = "auto"
    streams: int = 0


@dataclass
class InferOptions:
    """What to make of the input. max_size: longest side of the frames stylized (pixels; the output
    has that size). start, duration: the part of the input to stylize, seconds. lossless, crf,
    preset: output coding (x264's crf and speed preset). side_by_side: write input | output, twice
    as wide. stabilize: strength of the flow-guided stabilizer (:mod:`vidstyle.infer.stabilize`), 0 = off.
    post_process: (input, stylized) uint8 (H, W, 3) -> uint8 (H, W, 3), applied to each frame after
    the stabilizer, before it is written (colour and strength controls, :mod:`vidstyle.infer.color`).
    made_by: what made the output (model, network, backend), stored in the video file's metadata
    (:data:`vidstyle.io.encode.MADE_BY_KEY`) so that ``vidstyle metrics`` can report it."""

    max_size: int | None = None
    start: float = 0.0
    duration: float | None = None
    lossless: bool = False
    crf: int = 18
    # veryfast: much less CPU time than medium for a file no larger at crf 18 (README, "Backends,
    # and the whole job against a per-frame peer"), CPU the network would otherwise lose.
    preset: str = "veryfast"
    side_by_side: bool = False
    stabilize: float = 0.0
    post_process: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    made_by: dict[str, str] | None = None


def check_options(options: InferOptions) -> None:
    """ConfigError for settings no input can satisfy (checked before any input is read)."""
    start_ok = math.isfinite(options.start) and options.start >= 0
    duration_ok = options.duration is None or (math.isfinite(options.duration) and options.duration > 0)
    if not (start_ok and duration_ok):
        raise ConfigError(f"--start must be >= 0 and --duration > 0 seconds, both finite numbers, "
                          f"got {options.start} and {options.duration}")
    if options.max_size is not None and options.max_size < 8:
        raise ConfigError(f"--max-size must be at least 8 pixels, got {options.max_size}")
    if not 0 <= options.crf <= 51:
        raise ConfigError(f"--crf must be in 0..51, got {options.crf}")
    if options.preset not in X264_PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(X264_PRESETS)}, got '{options.preset}'")
    # Deferred: the stabilizer brings OpenCV, which a command line parsing its options does not need.
    from vidstyle.infer.stabilize import StabilizerConfig  # noqa: PLC0415

    StabilizerConfig(strength=options.stabilize).check()
