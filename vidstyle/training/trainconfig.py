"""The settings of a training run: :class:`TrainConfig`, its checks, and what ``--resume`` may change.

A config is saved as ``runs/NAME/config.json`` and inside every checkpoint
(:mod:`vidstyle.training.runfiles`);
a resumed run is the saved config with only :data:`RESUMABLE_OVERRIDES` changed, so continuing a run
never silently turns it into another experiment.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2

from vidstyle.errors import ConfigError
from vidstyle.models.net import NETS
from vidstyle.training.losses import CONTENT_LAYERS, STYLE_LAYERS, LossWeights
from vidstyle.training.regularize import SHIFT_MIN_SIZE
from vidstyle.training.vgg import LAYERS

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MAX_SIDE = 4096   # pixels: crops and style images beyond this exhaust memory, they do not train better
# Settings a resumed run may change: they affect speed and output cadence, never the numbers.
RESUMABLE_OVERRIDES = ("steps", "device", "threads", "channels_last", "workers", "preview_every",
                       "checkpoint_every", "log_every", "max_minutes")
SEED_RANGE = (0, 2**32 - 1)   # what every generator a run seeds (numpy's, torch's) takes


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as runs/NAME/config.json and in every checkpoint.

    Sizes in pixels: ``size`` is the side of the square training crop, ``style_size`` the longer side
    the style image is resized to before its Gram matrices are taken (the ratio of the two sets the
    scale of brush strokes). ``batch``: pairs per step per process (2 * batch images).
    ``compound_*``: weight, largest shift (pixels) and noise (RGB [0, 1]) of the stability term of
    :mod:`vidstyle.training.regularize`. ``luminance_temporal`` and ``feature_temporal_weight``:
    ReCoNet's two temporal terms (:mod:`vidstyle.training.losses`), off by default.
    ``tone``: the network's tone-gate threshold
    (:mod:`vidstyle.models.net`).
    ``init``: a trained model (name or .safetensors) whose weights start the run.
    """

    style: str = ""
    name: str = ""
    flows: list[str] = field(default_factory=list)
    photos: list[str] = field(default_factory=list)
    photo_fraction: float | None = None
    runs_dir: str = "runs"
    net: str = "huang"
    init: str | None = None     # a model (name or .safetensors path) whose weights the run starts from
    steps: int = 4000
    batch: int = 2
    size: int = 256
    style_size: int = 512
    content_weight: float = LossWeights.content
    style_weight: float = LossWeights.style
    tv_weight: float = LossWeights.tv
    temporal_weight: float = LossWeights.temporal
    compound_weight: float = 3.0e7
    compound_shift: float = 4.0
    compound_noise: float = 0.02
    shift_weight: float = 0.0             # the exact-shift term (regularize.shift_loss); 0 = off
    luminance_temporal: bool = False      # the temporal term luminance-aware (ReCoNet)
    feature_temporal_weight: float = 0.0  # the temporal term on the bottleneck features (ReCoNet)
    tone: float = 0.25
    style_layers: list[str] = field(default_factory=lambda: list(STYLE_LAYERS))
    content_layers: list[str] = field(default_factory=lambda: list(CONTENT_LAYERS))
    lr: float = 1e-3
    scale: list[float] | None = field(default_factory=lambda: [0.8, 1.25])
    flip: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool | None = None   # None: on CUDA only (on CPU no faster: docs/training.md)
    threads: int | None = None
    workers: int | None = None
    preview_every: int = 100
    checkpoint_every: int = 200
    log_every: int = 10
    max_minutes: float | None = None   # wall time of one invocation's loop; None: run to ``steps``

    RESUMABLE: ClassVar[tuple[str, ...]] = RESUMABLE_OVERRIDES

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def loss_weights(self) -> LossWeights:
        return LossWeights(self.content_weight, self.style_weight, self.tv_weight, self.temporal_weight)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return config_from_dict(cls, data)

    def check(self) -> None:
        """Raise ConfigError for values that cannot work (before anything is loaded)."""
        check_name(self.name)
        if not self.style:
            raise ConfigError("--style is required: the style image to learn")
        if not Path(self.style).is_file():
            raise ConfigError(f"style image not found: {self.style}")
        if not cv2.haveImageReader(self.style):
            raise ConfigError(f"{self.style}: cannot read the style image (not an image file?)")
        if not self.flows and not self.photos:
            raise ConfigError("--flows (folders of precomputed flow files) or --photos is required")
        if self.net not in NETS:
            raise ConfigError(f"--net {self.net!r}: choose from {', '.join(sorted(NETS))}")
        for key in ("steps", "batch", "preview_every", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"--{key.replace('_', '-')} must be at least 1")
        if self.size < 16 or self.style_size < 16:
            raise ConfigError("--size and --style-size must be at least 16 pixels")
        if max(self.size, self.style_size) > _MAX_SIDE:
            raise ConfigError(f"--size and --style-size must be at most {_MAX_SIDE} pixels")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise ConfigError(f"--max-minutes {self.max_minutes}: give a positive number of minutes")
        for key in ("lr", "content_weight", "style_weight", "tv_weight", "temporal_weight", "compound_weight",
                    "compound_shift", "compound_noise", "shift_weight", "feature_temporal_weight", "tone",
                    "photo_fraction"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"--{key.replace('_', '-')} {value}: give a finite number")
        if min(self.content_weight, self.style_weight, self.tv_weight, self.temporal_weight,
               self.compound_weight, self.shift_weight, self.feature_temporal_weight) < 0:
            raise ConfigError("loss weights must not be negative")
        if not (0 <= self.compound_shift <= self.size / 4 and 0 <= self.compound_noise <= 1):
            raise ConfigError("--compound-shift must be in [0, size/4] pixels and --compound-noise in [0, 1]")
        if self.shift_weight > 0 and self.size < SHIFT_MIN_SIZE:
            raise ConfigError(f"--shift-weight needs a --size of at least {SHIFT_MIN_SIZE} pixels")
        if not 0 <= self.tone <= 1:
            raise ConfigError(f"--tone must be in [0, 1], got {self.tone}")
        if not self.lr > 0:
            raise ConfigError("--lr must be positive")
        check_seed(self.seed)
        if (self.threads is not None and self.threads < 1) or (self.workers is not None and self.workers < 0):
            raise ConfigError("--threads must be at least 1 and --workers at least 0")
        unknown = set(self.style_layers) | set(self.content_layers)
        unknown -= set(LAYERS)
        if unknown:
            raise ConfigError(f"unknown VGG layer(s) {', '.join(sorted(unknown))}")


def check_name(name: str) -> None:
    """ConfigError unless ``name`` can name a run folder and its model (train's and distill's --name)."""
    if not name or not _NAME_RE.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '_', '-' and '.' only")


def check_seed(seed: int) -> None:
    """ConfigError unless ``seed`` is in SEED_RANGE (train's and distill's --seed)."""
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"--seed {seed}: give a whole number from {SEED_RANGE[0]} to {SEED_RANGE[1]}")


def config_from_dict(config_class: type, data: dict[str, Any]) -> Any:
    """``config_class(**data)`` (a run's settings: TrainConfig, DistillConfig), refusing unknown keys."""
    unknown = set(data) - {f.name for f in dataclasses.fields(config_class)}
    if unknown:
        raise ConfigError(f"unknown setting(s) in the run's config: {', '.join(sorted(unknown))}")
    return config_class(**data)


def resume_config(runs_dir: str | os.PathLike, name: str, overrides: dict[str, Any],
                  config_class: type = TrainConfig) -> Any:
    """The saved config of run ``name``, with the settings in ``overrides`` changed.

    Only the settings in ``config_class.RESUMABLE`` may differ from the saved values; anything else
    would silently make the continued run a different experiment, so it is refused. ``config_class``:
    TrainConfig, or DistillConfig (``vidstyle distill``, whose run folder is a training run's).
    """
    path = Path(runs_dir) / name / "config.json"
    if not path.is_file():
        raise ConfigError(f"nothing to resume: no run '{name}' in {runs_dir} ({path.name} is missing); "
                          "start it without --resume")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable run config ({exc})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: unreadable run config (not a JSON object)")
    config = config_from_dict(config_class, saved)
    for key, value in overrides.items():
        current = getattr(config, key)
        if key in config_class.RESUMABLE:
            setattr(config, key, value)
        elif _normalized(value) != _normalized(current):
            raise ConfigError(f"--resume continues run '{name}' with its saved {key}={current!r}; "
                              f"start a new --name to train with {key}={value!r}")
    return config


def _normalized(value: Any) -> Any:
    return json.loads(json.dumps(value))


def check_same_run(saved: dict[str, Any], config: Any) -> None:
    """ConfigError unless the checkpoint's ``saved`` config is ``config`` (a TrainConfig or
    DistillConfig) up to its class's RESUMABLE settings."""
    current = _normalized(config.to_dict())
    changed = [k for k, v in saved.items() if k not in config.RESUMABLE and current.get(k) != v]
    if changed:
        raise ConfigError(f"the checkpoint in {config.run_dir} was trained with other settings "
                          f"({', '.join(changed)}); resume with the saved config.json")
