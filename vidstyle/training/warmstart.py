"""Start a new training run from a trained model's weights (``vidstyle train --init MODEL``).

A new style learns faster from a network that already stylizes than from random weights: the encoder
and decoder keep what they learned about images and only the style has to change. The model is found
the way ``--model`` finds one (a shipped name, a ``runs/`` name or a ``.safetensors`` path, see
:mod:`vidstyle.models.zoo`), and its network must be the one the run trains: the same ``--net`` and the same
widths, so that every tensor keeps its meaning.
"""

from __future__ import annotations

import os

import torch

from vidstyle.errors import ConfigError
from vidstyle.models.zoo import load_model


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
