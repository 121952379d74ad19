"""Start a new training run from a trained model's weights (``vidstyle train --init MODEL``).

A new style learns faster from a network that already stylizes than from random weights: the encoder
and decoder keep what they learned about images and only the style has to change. The model is found
the way ``--model`` finds one (a shipped name, a ``runs/`` name or a ``.safetensors`` path, see
:mod:`vidstyle.models.zoo`), and its network must be the one the run trains: the same ``--net`` and the same
widths, so that every tensor keeps its meaning.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidstyle.errors import ConfigError
from vidstyle.io.images import read_image, resize_longer_side, to_tensor
from vidstyle.models.zoo import ModelEntry, list_models, load_model, read_card
from vidstyle.training.losses import STYLE_LAYERS, gram
from vidstyle.training.modelcard import sha256_of
from vidstyle.training.vgg import VGG19


def load_init(spec: str | os.PathLike, net: torch.nn.Module,
              runs_dir: str | os.PathLike = "runs") -> dict[str, torch.Tensor]:
    """The state dict of model ``spec``, checked to fit ``net`` (a freshly built network of the run).
    A name is looked up with the run's ``runs_dir`` in place of ``runs/``.

    Raises ModelError if the model cannot be found or read, ConfigError if it is another network
    (other ``--net`` or other widths) than ``net``.
    """
    loaded = load_model(spec, runs_dir=runs_dir)
    # The tone gate has no parameters: a model with or without it fits either way.
    theirs, ours = ({k: v for k, v in config.items() if k != "tone"}
                    for config in (loaded.card.net, net.config))
    if theirs != ours:
        if theirs.get("name") != ours.get("name"):
            raise ConfigError(f"--init {spec}: that model is a '{theirs.get('name')}' network and this "
                              f"run trains --net {ours.get('name')}; pass --net {theirs.get('name')}")
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ConfigError(f"--init {spec}: that model's network differs from this run's in "
                          f"{', '.join(differ)} ({', '.join(f'{k}={theirs.get(k)}' for k in differ)})")
    return {k: v.detach().clone() for k, v in loaded.net.state_dict().items()}


# The shipped models' style images (data/styles/CREDITS.md), in a checkout.
STYLES_DIR = Path(__file__).resolve().parents[2] / "data" / "styles"
CHOICE_SIZE = 256        # longer side of the style images when the warm start is chosen


@dataclass
class WarmStart:
    """The shipped model a quick run starts from, and why: ``distance`` is the style loss between the
    Gram matrices of its style image and of the new painting (both at CHOICE_SIZE px)."""

    entry: ModelEntry
    distance: float
    ranking: list[tuple[str, float]]

    def line(self) -> str:
        others = ", ".join(f"{n} {d:.3g}" for n, d in self.ranking[1:3])
        return (f"warm start: {self.entry.name}, the shipped model whose style is nearest your painting "
                f"(style distance {self.distance:.3g}; next: {others or 'none'})")


def shipped_models() -> list[ModelEntry]:
    """The shipped models (vidstyle/weights/), whatever shadows their names elsewhere."""
    return [e for e in list_models(include_shadowed=True, runs_dir=None) if e.source == "shipped"]


def style_grams(vgg: VGG19, image: np.ndarray, long_side: int) -> dict[str, torch.Tensor]:
    """Gram matrices of uint8 RGB ``image`` at the style layers, longer side ``long_side`` px."""
    with torch.no_grad():
        features = vgg(to_tensor(resize_longer_side(image, long_side)), STYLE_LAYERS)
    return {k: gram(v) for k, v in features.items()}


def card_style_image(card, styles_dir: Path = STYLES_DIR) -> Path | None:
    """The style image ``card`` names, in ``styles_dir``: None when the card names none, the file is
    missing, or it is not the file the card names by SHA-256."""
    if not card.style_image:
        return None
    path = styles_dir / card.style_image
    if not path.is_file():
        return None
    sha = card.trained.get("style_sha256")
    return None if sha and sha != sha256_of(path) else path


def choose_warm_start(style: np.ndarray, vgg: VGG19, candidates: Sequence[ModelEntry] | None = None,
                      styles_dir: Path = STYLES_DIR) -> WarmStart:
    """The candidate (default: the shipped huang models) whose style image's Gram matrices are nearest
    ``style``'s in the training style loss. Candidates whose style image is not in ``styles_dir`` (or
    not the file their card names by SHA-256) are left out; ConfigError if none is left."""
    target = style_grams(vgg, style, CHOICE_SIZE)
    ranking: list[tuple[float, ModelEntry]] = []
    seen: dict[str, float] = {}
    for entry in candidates if candidates is not None else shipped_models():
        card = read_card(entry)
        path = card_style_image(card, styles_dir)
        if card.net_name != "huang" or path is None:
            continue
        if path.name not in seen:
            grams = style_grams(vgg, read_image(path, "style image"), CHOICE_SIZE)
            seen[path.name] = float(sum(((grams[k] - g) ** 2).mean() for k, g in target.items()))
        ranking.append((seen[path.name], entry))
    if not ranking:
        raise ConfigError(f"no shipped model to start from: their style images are not in {styles_dir}; "
                          "pass --init MODEL")
    ranking.sort(key=lambda item: (item[0], item[1].name))
    return WarmStart(ranking[0][1], ranking[0][0], [(e.name, d) for d, e in ranking])
