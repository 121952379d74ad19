"""An untrained model file and a CLI runner shared by the inference tests (photos, batches, colour,
live): they need the network's behaviour, not its looks."""

from __future__ import annotations

from pathlib import Path

import torch

from vidstyle.cli import main
from vidstyle.models.net import build_net
from vidstyle.models.zoo import ModelCard, save_model


def save_untrained(folder: Path, name: str = "testnet") -> Path:
    """An untrained huang network (seed 0) saved as ``folder/name.safetensors``."""
    torch.manual_seed(0)
    net = build_net("huang")
    card = ModelCard(name, net.config, style_image="none.jpg", description="untrained, for tests")
    return save_model(net, Path(folder) / f"{name}.safetensors", card)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``vidstyle ARGS`` in-process on one CPU thread, quiet: (exit status, stdout, stderr)."""
    code = main([*map(str, args), "--quiet", "--device", "cpu", "--threads", "1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
