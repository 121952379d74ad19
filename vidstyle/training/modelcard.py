"""The model card a training run writes: what was trained, on what, on which hardware, in words.

A card travels with the model to other machines, so it names things and never this machine's paths:
the style image by file name and SHA-256 (the shipped models' images are in ``data/styles/``), the
training data by folder names with counts ("21 clip(s) (2871 frame pairs) in flows_train"), the
hardware in plain words ("a 2-core CPU (1 thread)", "8 x NVIDIA H100 80GB HBM3").
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidstyle.models.zoo import ModelCard

if TYPE_CHECKING:   # train imports this module; the types are only for reading
    from vidstyle.training.setup import Setup
    from vidstyle.training.trainconfig import TrainConfig


def training_card(net_config: dict[str, Any], config: TrainConfig, setup: Setup, seconds: float,
                  last: dict[str, float]) -> ModelCard:
    """The card of a finished run. ``last``: the last logged loss means (runfiles.CSV_FIELDS)."""
    hardware = hardware_words(setup)
    data = data_summary(config.flows, config.photos)
    style = Path(config.style).name
    return ModelCard(
        name=config.name,
        net=dict(net_config),
        style_image=style,
        description=(f"{config.net} network trained on the style image {style}: {config.steps} steps of "
                     f"{config.batch} frame pair(s) at {config.size} px, on {hardware} in "
                     f"{duration_words(seconds)}; data: {'; '.join(data)}"
                     + (f"; starting from model {Path(config.init).name}." if config.init else ".")),
        trained={"steps": config.steps, "size": config.size, "style_size": config.style_size,
                 "batch": config.batch, "world_size": setup.world_size,
                 "device": torch.cuda.get_device_name(setup.device) if setup.is_cuda else "cpu",
                 "hardware": hardware, "seconds": round(seconds, 1), "lr": config.lr,
                 "weights": {**config.loss_weights().as_dict(), "compound": config.compound_weight,
                             "feature_temporal": config.feature_temporal_weight,
                             "shift": config.shift_weight},
                 "luminance_temporal": config.luminance_temporal,
                 "compound": {"shift": config.compound_shift, "noise": config.compound_noise},
                 "init": Path(config.init).name if config.init else None,
                 "style_sha256": sha256_of(config.style), "data": data},
        metrics={"style_loss": last.get("style"), "content_loss": last.get("content"),
                 "temporal_loss": last.get("temporal"), "warping_error": None, "clip": None},
    )


def hardware_words(setup: Setup) -> str:
    """E.g. "1 x NVIDIA H100 80GB HBM3", "a 2-core CPU (1 thread)"."""
    if setup.is_cuda:
        return f"{setup.world_size} x {torch.cuda.get_device_name(setup.device)}"
    threads = torch.get_num_threads()
    cpu = f"a {os.cpu_count() or '?'}-core CPU ({threads} thread{'' if threads == 1 else 's'})"
    return cpu if setup.world_size == 1 else f"{setup.world_size} processes on {cpu}"


def data_summary(flows: list[str], photos: list[str]) -> list[str]:
    """What a run trained on, by folder name and count; never a full path."""
    from vidstyle.flow.flowstore import FlowFile, find_flow_files
    from vidstyle.training.data import find_photos

    parts = []
    if flows:
        # A clip precomputed again with --frame-step K (flows_step2/clip.h5 beside flows/clip.h5) is
        # the same clip: it is counted once, and the pairs say how far apart their frames are.
        files = find_flow_files(flows)
        pairs, steps = 0, set()
        for path in files:
            with FlowFile(path) as clip:
                pairs += clip.num_pairs
                steps.add(int(clip.attrs.get("frame_step", 1)))
        clips = len({Path(path).stem for path in files})
        apart = "" if steps <= {1} else f": {' and '.join(map(str, sorted(steps)))} frames apart"
        parts.append(f"{clips} clip(s) ({pairs} frame pairs{apart}) in {folder_names(flows)}")
    if photos:
        parts.append(f"{len(find_photos(photos))} photo(s) in {folder_names(photos)}")
    return parts


def folder_names(paths: list[str]) -> str:
    """The last component of each path ("/data/x/flows_train" -> "flows_train"), comma-separated."""
    return ", ".join(Path(p).resolve().name or str(p) for p in paths)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def duration_words(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
