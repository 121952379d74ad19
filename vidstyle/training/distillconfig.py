"""The settings of ``vidstyle distill`` (:mod:`vidstyle.training.distill`), importable without torch so
that the command line reads its defaults from here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vidstyle.errors import ConfigError

LITE_NETS = ("lite", "lite2")   # the students --channels and --init's widths apply to


@dataclass
class DistillConfig:
    """What ``vidstyle distill`` runs; the CLI's defaults come from here."""

    teacher: str
    name: str
    flows: list[str] = field(default_factory=list)
    photos: list[str] = field(default_factory=list)
    # Share of the draws that are photo pairs when both flows and photos are given; None: in proportion
    # to their counts (vidstyle.training.data.PairDataset). A small folder of chosen frames (bright,
    # flat ones, say) weighs little beside thousands of video pairs unless this is set.
    photo_fraction: float | None = None
    # The student network; None: the --init model's when it is a lite or lite2 network (a shipped fast
    # network continued as it is), else lite. Resolved when the run starts and saved with it.
    net: str | None = None
    steps: int = 3000
    batch: int = 4
    size: int = 256
    lr: float = 2e-3
    noise: float = 0.02
    # Weight of the feature term (VGG-19 Gram matrices of the student's output against the teacher's,
    # relative error per layer; vidstyle.training.distill.feature_loss); 0 leaves it out. 1 took
    # starwars_blue_lite's held-out style loss from 1.45x its teacher's to 1.05x (docs/fast-networks.md).
    feature_weight: float = 1.0
    # Weight of the temporal term (the student's masked warping error between the two frames of each
    # pair over the teacher's; vidstyle.training.distill.temporal_ratio); 0 leaves it out. The feature
    # term brings back texture, and with it flicker: this holds the student to the teacher's steadiness.
    temporal_weight: float = 0.0
    # Weight of the style term (the student's VGG-19 Gram matrices against the style image's, the
    # teacher's own painting unless ``style`` names another; relative error per layer, as the feature
    # term); 0 leaves it out. Where a small student cannot hold all of the teacher's texture, this
    # asks it for the painting's directly: the style loss the look is measured by.
    style_weight: float = 0.0
    # Weight of the content term (the student's VGG-19 relu4_2 feature maps against the teacher's
    # output's, relative squared error; vidstyle.training.distill.content_error); 0 leaves it out. The
    # Gram terms say nothing of where things are: this one asks the student to draw what the teacher
    # draws where the teacher draws it (a white dog on a lawn, not the lawn's texture over it).
    content_weight: float = 0.0
    # Weight of the layout term (the mean absolute error of the student's output against the
    # teacher's, both averaged over 8 x 8 blocks; vidstyle.training.distill.layout_error); 0 leaves
    # it out. Beside Gram terms weighted in the tens the pixel term carries little: this asks for the
    # teacher's light and colour place by place, and leaves the texture within each block free.
    layout_weight: float = 0.0
    # The share of frame pairs blurred, both frames by the same random motion streak or Gaussian,
    # for the teacher and the student alike: a small student followed the blur of a shaken frame
    # where its teacher kept painting texture (the_wave_lite on davis_dog; docs/fast-networks.md).
    blur: float = 0.0
    style: str | None = None   # the style term's image; default the teacher's (data/styles/, by its card)
    init: str | None = None   # start the student from this model (a name or a .safetensors file)
    # The student's widths (c1, c2, c3); None: the init's when there is one, else the network's
    # defaults. Wider than the init's: the init widened (vidstyle.models.netlite.widen).
    channels: list[int] | None = None
    seed: int = 0
    runs_dir: str = "runs"
    max_minutes: float | None = None
    checkpoint_every: int = 100
    threads: int | None = None
    device: str = "auto"

    # What --resume may change (vidstyle.training.trainconfig.resume_config): the rest is the run.
    RESUMABLE: ClassVar[tuple[str, ...]] = ("steps", "device", "threads", "max_minutes", "checkpoint_every")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> None:
        """ConfigError, one line, for a setting out of range."""
        from vidstyle.models.net import NET_DEFAULTS
        from vidstyle.training.trainconfig import check_name, check_seed

        if self.net is not None and self.net not in NET_DEFAULTS:
            raise ConfigError(f"--net {self.net!r}: choose from {', '.join(sorted(NET_DEFAULTS))}")
        for option, value in (("steps", self.steps), ("batch", self.batch), ("size", self.size)):
            if value < 1:
                raise ConfigError(f"--{option} must be at least 1, got {value}")
        if self.size < 16:
            raise ConfigError(f"--size must be at least 16 pixels, got {self.size}")
        if not self.lr > 0 or not 0 <= self.noise < 1:
            raise ConfigError(f"--lr must be > 0 and --noise in [0, 1), got {self.lr:g} and {self.noise:g}")
        weights = (("feature-weight", self.feature_weight), ("temporal-weight", self.temporal_weight),
                   ("style-weight", self.style_weight), ("content-weight", self.content_weight),
                   ("layout-weight", self.layout_weight))
        for option, value in weights:
            if not value >= 0:
                raise ConfigError(f"--{option} must be >= 0, got {value:g}")
        if self.channels is not None:
            if len(self.channels) != 3 or min(self.channels) < 1:
                raise ConfigError(f"--channels must be three positive widths C1,C2,C3, got {self.channels}")
            if self.net is not None and self.net not in LITE_NETS:
                raise ConfigError(f"--channels is for the lite and lite2 students, not {self.net!r}")
        if self.photo_fraction is not None and not 0 <= self.photo_fraction <= 1:
            raise ConfigError(f"--photo-fraction must be a share in [0, 1], got {self.photo_fraction:g}")
        if not 0 <= self.blur <= 1:
            raise ConfigError(f"--blur must be a share in [0, 1], got {self.blur:g}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"--max-minutes must be > 0, got {self.max_minutes:g}")
        check_name(self.name)
        check_seed(self.seed)
        if not self.teacher:
            raise ConfigError("give the teacher: the model to reproduce (a name or a .safetensors file)")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name
