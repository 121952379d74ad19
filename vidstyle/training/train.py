"""Two-frame synergic training (Huang et al. 2017): device set-up, the loop, previews, export.

Each step takes ``batch`` pairs per process, runs frames t and t+1 of every pair through the network
in one batch, and minimizes :class:`vidstyle.training.losses.HybridLoss` (content, style and TV on both
outputs, temporal between them) with Adam. The settings are a
:class:`vidstyle.training.trainconfig.TrainConfig`;
the run folder, its log and checkpoints are :mod:`vidstyle.training.runfiles`.

Resuming (``resume=True``) restores model, optimizer, step and RNG. The data stream is a pure function
of (seed, step) (see vidstyle.training.data), so on CPU a resumed run reproduces an uninterrupted one bit for
bit; on CUDA it matches up to cuDNN's non-deterministic kernels.

Device, AMP and memory format are decided once in :func:`setup_device`: on CUDA, bf16 autocast and
channels_last; on CPU, float32. Several GPUs: start with ``torchrun``; its environment variables
(RANK, LOCAL_RANK, WORLD_SIZE) turn on DistributedDataParallel, each rank drawing its own shard of
the data stream; rank 0 alone logs, previews, checkpoints and exports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidstyle.device import cap_threads, usable_cores
from vidstyle.errors import ConfigError
from vidstyle.io.images import load_style_image, to_image, to_tensor, write_image
from vidstyle.models.net import NETS, build_net, count_parameters
from vidstyle.training.data import DrawSampler, PairDataset
from vidstyle.training.losses import HybridLoss, feature_temporal_loss
from vidstyle.training.regularize import compound_loss, random_smooth_flow, shift_loss
from vidstyle.training.runfiles import TRAIN_TERMS, RunFiles, load_checkpoint, save_checkpoint
from vidstyle.training.setup import Setup, setup_device
from vidstyle.training.trainconfig import TrainConfig, check_same_run
from vidstyle.training.vgg import LAYERS, VGG19
from vidstyle.training.warmstart import load_init

if TYPE_CHECKING:
    from vidstyle.models.zoo import ModelCard

EXPORT_DTYPE = torch.float16


@dataclass
class TrainResult:
    """What a finished run produced. ``losses``: the last logged means (runfiles.CSV_FIELDS)."""

    run_dir: Path
    weights: Path | None
    steps: int
    seconds: float
    losses: dict[str, float]
    world_size: int
    distributed: bool


def describe_nets() -> list[str]:
    """One line per network: name, parameter count and config (``vidstyle train --describe``)."""
    lines = []
    for name in sorted(NETS):
        net = build_net(name)
        lines.append(f"{name:8s} {count_parameters(net):>10,d} parameters  {json.dumps(net.config)}")
    return lines


def render_preview(net: torch.nn.Module, item: dict[str, torch.Tensor], setup: Setup,
                   amp: bool) -> np.ndarray:
    """uint8 RGB picture: input frame t | output t | output t+1 (item from PairDataset)."""
    frames = torch.stack([item["frame_t"], item["frame_t1"]]).to(setup.device)
    with torch.no_grad(), setup.autocast(amp):
        out = net(frames.contiguous(memory_format=setup.memory_format)).float()
    return to_image(torch.cat([frames[0], out[0], out[1]], dim=2))


def build_loss(config: TrainConfig, setup: Setup) -> HybridLoss:
    """The hybrid loss of ``config`` on ``setup.device``: VGG-19 up to the deepest layer used, style
    Gram targets from the style image at ``style_size``."""
    layers = config.style_layers + config.content_layers
    vgg = VGG19(last_layer=max(layers, key=LAYERS.index))
    style = to_tensor(load_style_image(config.style, config.style_size))
    loss_fn = HybridLoss(vgg, style, config.loss_weights(), config.style_layers, config.content_layers,
                         luminance=config.luminance_temporal)
    return loss_fn.to(setup.device, memory_format=setup.memory_format)


def _restore(state: dict[str, Any], net: torch.nn.Module, optimizer: torch.optim.Optimizer,
             setup: Setup) -> None:
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


def _restore_rng(state: dict[str, Any], setup: Setup) -> None:
    # Called right before the loop: building the loss network draws random numbers too, and the
    # steps draw them (the compound term's motions and noise), so this is where an uninterrupted
    # run's stream stood.
    torch.set_rng_state(state["rng"]["torch"])
    if setup.is_cuda and state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def _make_loader(dataset: PairDataset, config: TrainConfig, setup: Setup, start_step: int) -> DataLoader:
    # On CPU the step dwarfs loading and worker processes would take cores from it.
    # More loader processes than CPUs only share them (and thousands exhaust the machine): capped.
    workers = (cap_threads(config.workers, "--workers") if config.workers is not None
               else min(8, usable_cores()) if setup.is_cuda else 0)
    sampler = DrawSampler(dataset, config.batch, start_step, setup.rank, setup.world_size)
    return DataLoader(dataset, batch_size=config.batch, sampler=sampler, num_workers=workers,
                      pin_memory=setup.is_cuda, persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None)


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> TrainResult:
    """Run (or continue, ``resume``) the training ``config`` describes; returns what it produced.

    Raises ConfigError / FlowFileError for bad settings or data, and ConfigError if a loss or gradient
    becomes NaN or infinite (the last checkpoint written is kept; it was taken at a finite step).
    ConfigError "busy" while another process runs the same run; a new run that ends before its first
    checkpoint leaves nothing behind (:meth:`RunFiles.hold`).
    """
    config.check()
    files = RunFiles(config.run_dir)
    # Rank 0 alone writes the run folder (RANK: torchrun's, as setup_device reads it), so it holds it.
    holding = files.hold(resume) if int(os.environ.get("RANK", 0)) == 0 else contextlib.nullcontext()
    with holding:
        return _train(config, files, resume, overwrite, progress)


def _train(config: TrainConfig, files: RunFiles, resume: bool, overwrite: bool,
           progress: bool) -> TrainResult:
    setup = setup_device(config.device, config.threads, config.channels_last)
    # Checked before the run folder is written, so a wrong --init leaves nothing behind.
    init_state = (load_init(config.init, build_net(config.net, tone=config.tone), config.runs_dir)
                  if config.init and not resume else None)
    files.check_start(resume, overwrite)
    state = load_checkpoint(files.checkpoint) if resume else None
    if state:
        check_same_run(state["config"], config)
    start_step = int(state["step"]) if state else 0
    # Data first: bad flow files or photos are reported in a second, not after loading VGG.
    dataset = PairDataset(config.flows, crop=config.size, flip=config.flip,
                          scale=tuple(config.scale) if config.scale else None, photos=config.photos,
                          photo_fraction=config.photo_fraction, seed=config.seed)
    check_photos(dataset.photos)
    preview = dataset.preview_item()

    torch.manual_seed(config.seed)
    net = build_net(config.net, tone=config.tone)
    if init_state:
        net.load_state_dict(init_state)
    net = net.to(setup.device, memory_format=setup.memory_format)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    if state:
        try:
            _restore(state, net, optimizer, setup)
        except (RuntimeError, KeyError, ValueError, TypeError):
            raise ConfigError(f"{files.checkpoint}: its weights do not fit the run's network") from None
    model = (torch.nn.parallel.DistributedDataParallel(net, device_ids=[setup.device] if setup.is_cuda
                                                       else None) if setup.distributed else net)
    loss_fn = build_loss(config, setup)
    # Style image, flow files and photos have all been read or checked: only now is the run folder
    # touched, so a run that cannot start leaves no folder, and --overwrite keeps the old run intact.
    if setup.master:
        files.prepare(config, resume, overwrite)
    batches = iter(_make_loader(dataset, config, setup, start_step))   # endless; the loop stops it
    if setup.master:
        files.start_log(start_step)

    seconds = float(state["seconds"]) if state else 0.0
    sums = torch.zeros(len(TRAIN_TERMS) + 1, device=setup.device)
    counted, last_row = 0, {}
    if state:
        _restore_rng(state, setup)
    bar = tqdm(total=config.steps, initial=start_step, disable=not (progress and setup.master),
               unit="step", dynamic_ncols=True, desc=config.name)
    clock = time.perf_counter()
    deadline = clock + 60.0 * config.max_minutes if config.max_minutes else None
    final_step = start_step
    for step in range(start_step + 1, config.steps + 1):
        batch = {k: v.to(setup.device, non_blocking=True) for k, v in next(batches).items()}
        terms = pair_loss(model, loss_fn, batch, setup, config.amp, config)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf"))
        _stop_unless_finite(terms, grad_norm, step, setup, files)
        optimizer.step()
        final_step = step
        last = step == config.steps or _out_of_time(deadline, setup)

        sums += torch.stack([terms["total"].detach()] + [terms[k].detach() for k in TRAIN_TERMS])
        counted += 1
        bar.update(1)
        if step % config.log_every == 0 or last:
            if setup.distributed:
                dist.all_reduce(sums)
            elapsed = seconds + time.perf_counter() - clock
            last_row = _log_row(sums / (counted * setup.world_size), step, config.lr, elapsed)
            sums.zero_()
            counted = 0
            if setup.master:
                files.log(last_row)
                bar.set_postfix({k: f"{last_row[k]:.3g}" for k in ("total", *TRAIN_TERMS)}, refresh=False)
        if setup.master and (step % config.preview_every == 0 or last):
            picture = render_preview(net, preview, setup, config.amp)
            write_image(files.previews / f"step_{step:06d}.png", picture)
        if setup.master and (step % config.checkpoint_every == 0 or last):
            save_checkpoint(files.checkpoint, net, optimizer, step,
                            config, seconds + time.perf_counter() - clock)
        if last:
            break
    bar.close()
    seconds += time.perf_counter() - clock
    if not last_row and setup.master:   # resumed a finished run: nothing new was logged
        last_row = (files.read_log() or [{}])[-1]
    # A run stopped by --max-minutes is described by the steps it took (--resume goes on to --steps).
    done = dataclasses.replace(config, steps=final_step)
    weights = export_model(net, done, setup, seconds, last_row) if setup.master else None
    if setup.distributed:
        dist.barrier()
    return TrainResult(files.dir, weights, final_step, seconds, last_row, setup.world_size,
                       setup.distributed)


def _out_of_time(deadline: float | None, setup: Setup) -> bool:
    """Whether --max-minutes has run out; every process agrees (rank 0's clock decides)."""
    if deadline is None:
        return False
    over = time.perf_counter() >= deadline
    if not setup.distributed:
        return over
    flag = torch.tensor(float(over), device=setup.device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def check_photos(paths: list[str]) -> None:
    """ConfigError naming the first of ``paths`` whose header no image decoder accepts (a text file
    named .jpg, an empty file): found now rather than at the random step that first draws it."""
    bad = [p for p in paths if not cv2.haveImageReader(p)]
    if bad:
        raise ConfigError(f"{bad[0]}: not a readable image ({len(bad)} of {len(paths)} photos); "
                          "remove it or fix it")


@contextlib.contextmanager
def bottleneck_features(model: torch.nn.Module, wanted: bool) -> Iterator[list[torch.Tensor]]:
    """A list that receives the output of ``model``'s residual blocks (its bottleneck, 1/4 of the
    frame's side) on each forward pass inside the block; stays empty unless ``wanted``."""
    captured: list[torch.Tensor] = []
    if not wanted:
        yield captured
        return
    net = getattr(model, "module", model)          # under DistributedDataParallel
    blocks = getattr(net, "residuals", None)
    if blocks is None:
        raise ConfigError(f"--feature-temporal-weight needs a network with residual blocks; "
                          f"{type(net).__name__} has none")
    handle = blocks.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    try:
        yield captured
    finally:
        handle.remove()


def pair_loss(model: torch.nn.Module, loss_fn: HybridLoss, batch: dict[str, torch.Tensor], setup: Setup,
              amp: bool, config: TrainConfig | None = None) -> dict[str, torch.Tensor]:
    """Stylize frames t and t+1 of N pairs in one batch and return the loss terms (see HybridLoss),
    plus the compound stability term of :mod:`vidstyle.training.regularize` on frames t (weighted into
    ``total`` when ``config.compound_weight`` > 0; 0 without a config), its exact-shift term (when
    ``config.shift_weight`` > 0) and ReCoNet's feature temporal term on the bottleneck features of the
    pair (when ``config.feature_temporal_weight`` > 0).

    batch: the PairDataset item dict with a leading N axis, already on ``setup.device``.
    """
    frames = torch.cat([batch["frame_t"], batch["frame_t1"]]).contiguous(memory_format=setup.memory_format)
    feature_weight = config.feature_temporal_weight if config is not None else 0.0
    with setup.autocast(amp), bottleneck_features(model, feature_weight > 0) as features:
        out_t, out_t1 = model(frames).float().chunk(2)
        terms = loss_fn(batch["frame_t"], batch["frame_t1"], out_t, out_t1, batch["flow_bw"], batch["mask"])
        terms["feature_temporal"] = torch.zeros((), device=out_t.device)
        if features:
            terms["feature_temporal"] = feature_temporal_loss(*features[0].chunk(2), batch["flow_bw"],
                                                              batch["mask"])
            terms["total"] = terms["total"] + feature_weight * terms["feature_temporal"]
        terms["compound"] = torch.zeros((), device=out_t.device)
        if config is not None and config.compound_weight > 0:
            n, _, height, width = out_t.shape
            flow = random_smooth_flow(n, height, width, config.compound_shift, device=out_t.device)
            terms["compound"] = compound_loss(model, batch["frame_t"], out_t, flow, config.compound_noise)
            terms["total"] = terms["total"] + config.compound_weight * terms["compound"]
        terms["shift"] = torch.zeros((), device=out_t.device)
        if config is not None and config.shift_weight > 0:
            terms["shift"] = shift_loss(model, batch["frame_t"], out_t, config.compound_noise)
            terms["total"] = terms["total"] + config.shift_weight * terms["shift"]
    return terms


def _log_row(means: torch.Tensor, step: int, lr: float, seconds: float) -> dict[str, float]:
    values = means.tolist()
    return {"step": step, "total": values[0], **dict(zip(TRAIN_TERMS, values[1:])), "lr": lr,
            "seconds": round(seconds, 3)}


def _stop_unless_finite(terms: dict[str, torch.Tensor], grad_norm: torch.Tensor, step: int,
                        setup: Setup, files: RunFiles) -> None:
    """Raise ConfigError before the optimizer applies a NaN/inf update (all ranks agree)."""
    finite = (torch.isfinite(terms["total"]) & torch.isfinite(grad_norm)).float()
    if setup.distributed:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item() == 1.0:
        return
    bad = [k for k in TRAIN_TERMS if not math.isfinite(terms[k].item())] or ["gradient"]
    kept = (f"last good checkpoint: {files.checkpoint}" if files.checkpoint.exists()
            else "no checkpoint was written yet")
    raise ConfigError(f"training diverged at step {step}: {', '.join(bad)} became NaN or infinite; "
                      f"{kept}; try a lower --lr or smaller loss weights")


def export_model(net: torch.nn.Module, config: TrainConfig, setup: Setup, seconds: float,
                 last: dict[str, float], edit_card: Callable[[ModelCard], ModelCard] | None = None) -> Path:
    """Write runs/NAME/NAME.safetensors (fp16) and NAME.json, the model card vidstyle.models.zoo reads
    (see vidstyle.training.modelcard; ``edit_card`` may add to it, as ``--quick`` does). ConfigError,
    before anything is written, if the weights are not finite or beyond float16's range: the run
    diverged."""
    from vidstyle.models.zoo import save_model, weights_problem
    from vidstyle.training.modelcard import training_card

    problem = weights_problem(net.state_dict(), EXPORT_DTYPE)
    if problem:
        checkpoint = config.run_dir / "checkpoint.pt"
        kept = f" (its final state is in {checkpoint})" if checkpoint.is_file() else ""
        raise ConfigError(f"training finished, but no model was written: {problem}; the run diverged, "
                          f"try a lower --lr than {config.lr:g}{kept}")
    card = training_card(net.config, config, setup, seconds, last)
    if edit_card is not None:
        card = edit_card(card)
    return save_model(net, config.run_dir / f"{config.name}.safetensors", card, dtype=EXPORT_DTYPE)
