"""Quick training: a new style in minutes on a CPU, from the nearest shipped model (``--quick``).

``vidstyle train --style PAINTING --name NAME --quick [--content CLIP_OR_FOLDER] [--max-minutes M]``
needs no flow files: it reads a few frames of the content clips (and photos), computes the flow of the
pairs it uses on the fly (:mod:`vidstyle.flow.optical`, DIS), starts from the shipped model whose
style statistics are nearest the painting, and trains until a wall-clock budget runs out, then writes
the model like any run (``runs/NAME/NAME.safetensors`` + card, both atomically).

What makes a step cheap (``benchmarks/train_bench.py`` measures each part):

- content features cached per sample: the samples are a fixed set of crops, so the VGG-19 pass on an
  input crop is taken once, the first time the crop is drawn, instead of at every step;
- content and style losses on frame t of each pair only (the default loop takes them on both
  frames): frame t+1's output is tied to frame t's by the temporal loss, and both frames still go
  through the (cheap) stylizing network, so a step runs the VGG forward and backward on half the
  images. The compound stability term of :mod:`vidstyle.training.regularize` is kept.

The loss weights, the tone gate and the network are the warm-start model's (its card), so a painting
is trained with the weights that suited the nearest style, the style weight raised (STYLE_BOOST).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidstyle.errors import ConfigError
from vidstyle.fsutil import atomic_output, hold_lock
from vidstyle.io.images import resize_longer_side, to_image, to_tensor, write_image
from vidstyle.models.net import build_net
from vidstyle.models.zoo import load_model, read_card
from vidstyle.training.losses import (
    HybridLoss,
    LossWeights,
    content_loss,
    style_loss,
    temporal_loss,
    tv_loss,
)
from vidstyle.training.modelcard import duration_words
from vidstyle.training.quickdata import (
    Content,
    batch_tensors,
    find_content,
    load_content,
    make_samples,
    read_style,
    shorter_side,
)
from vidstyle.training.regularize import compound_loss, random_smooth_flow
from vidstyle.training.runfiles import TRAIN_TERMS, RunFiles
from vidstyle.training.setup import setup_device
from vidstyle.training.train import export_model
from vidstyle.training.trainconfig import TrainConfig
from vidstyle.training.vgg import VGG19
from vidstyle.training.warmstart import WarmStart, choose_warm_start, load_init, shipped_models

DEFAULT_MINUTES = 15.0
# The shipped models' style weights were tuned for 4000 steps from random weights. From a warm start,
# in the 70-150 steps a quick run takes, the style loss levels off after about 30 steps while the
# content loss keeps falling (the output drifts back towards the photo), so the style is weighted
# 3x: on Udnie, held-out davis_dog's style loss went from 0.52 to 0.39 of the input's (docs/own-style.md).
STYLE_BOOST = 3.0


@dataclass
class QuickConfig:
    """A quick run. ``content``: clips, frame folders, photos or folders of them (empty: the shipped
    sample clip and content frames). ``max_minutes``: the whole command's wall-clock budget, setup,
    export and the final check included. ``size``: training crop side; ``batch``: pairs per step;
    ``samples``: crops drawn from the content once (their VGG features are cached). ``init``: the
    model to start from (None: the shipped model with the nearest style). ``reserve_seconds``: the end
    of the budget kept for export and the check (None: 15% of it, 5-150 s)."""

    style: str
    name: str
    content: list[str] = field(default_factory=list)
    runs_dir: str = "runs"
    max_minutes: float = DEFAULT_MINUTES
    size: int = 192
    batch: int = 2
    samples: int = 96
    lr: float = 1e-3
    style_size: int = 512
    init: str | None = None
    style_weight: float | None = None   # None: STYLE_BOOST x the warm-start model's
    temporal: bool = True        # False: no flow and no temporal loss, the compound term alone
    preview_seconds: float = 60.0
    reserve_seconds: float | None = None
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    overwrite: bool = False

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def check(self) -> None:
        TrainConfig(style=self.style, name=self.name, photos=["-"]).check()   # name and style file
        if not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise ConfigError(f"--max-minutes {self.max_minutes}: give a positive number of minutes")
        if self.size < 32 or self.batch < 1 or self.samples < 1:
            raise ConfigError("--size must be at least 32 pixels, --batch and the samples at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr {self.lr}: give a positive number")
        weight = self.style_weight
        if weight is not None and not (math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"--style-weight {self.style_weight}: give a finite number >= 0")


@dataclass
class QuickResult:
    run_dir: Path
    weights: Path
    steps: int
    seconds: float
    stopped_by: str               # "budget", "steps" or "interrupt"
    warm_start: WarmStart
    losses: dict[str, float]
    check: dict[str, Any] | None


# --- inputs -------------------------------------------------------------------------------------

def check_name(name: str) -> None:
    """ConfigError if ``name`` is a shipped model's: a quick run must not shadow one by accident."""
    if name in {e.name for e in shipped_models()}:
        raise ConfigError(f"--name {name}: that is a shipped model's name, and a run of that name would "
                          "replace it for --model; choose another name")


# --- the step -----------------------------------------------------------------------------------

class ContentCache:
    """Content-layer VGG features of each sample's frame t, computed the first time it is drawn."""

    def __init__(self, loss_fn: HybridLoss):
        self.loss_fn = loss_fn
        self.features: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, indices: Sequence[int], frames_t: torch.Tensor) -> dict[str, torch.Tensor]:
        missing = [j for j, i in enumerate(indices) if i not in self.features]
        if missing:
            with torch.no_grad():
                fresh = self.loss_fn.vgg(frames_t[missing], self.loss_fn.content_layers)
            for row, j in enumerate(missing):
                self.features[indices[j]] = {k: v[row:row + 1] for k, v in fresh.items()}
        return {k: torch.cat([self.features[i][k] for i in indices]) for k in self.loss_fn.content_layers}


def quick_terms(net: torch.nn.Module, loss_fn: HybridLoss, batch: dict[str, torch.Tensor],
                targets: dict[str, torch.Tensor], compound: tuple[float, float, float]
                ) -> dict[str, torch.Tensor]:
    """The loss terms of one quick step (names as runfiles.TRAIN_TERMS, plus ``total``).

    Both frames of each pair go through ``net``; content (against the cached ``targets``) and style
    on frame t's output only, TV on both outputs, the temporal loss between them, and the compound
    term on frame t. ``compound``: (weight, largest shift px, noise). With a temporal weight of 0,
    frame t alone goes through ``net`` (the temporal term is 0).
    """
    if loss_fn.weights.temporal > 0:
        out_t, out_t1 = net(torch.cat([batch["frame_t"], batch["frame_t1"]])).float().chunk(2)
        outputs = torch.cat([out_t, out_t1])
        temporal = temporal_loss(out_t, out_t1, batch["flow_bw"], batch["mask"])
    else:
        out_t = outputs = net(batch["frame_t"]).float()
        temporal = torch.zeros((), device=out_t.device)
    features = loss_fn.vgg(out_t, loss_fn.layers)
    terms = {"content": content_loss(features, targets),
             "style": style_loss(features, loss_fn.style_grams),
             "tv": tv_loss(outputs), "temporal": temporal}
    weight, shift, noise = compound
    n, _, height, width = out_t.shape
    flow = random_smooth_flow(n, height, width, shift, device=out_t.device)
    terms["compound"] = compound_loss(net, batch["frame_t"], out_t, flow, noise) if weight > 0 \
        else torch.zeros((), device=out_t.device)
    terms["feature_temporal"] = torch.zeros((), device=out_t.device)    # not a quick run's terms
    terms["shift"] = torch.zeros((), device=out_t.device)
    weights = {**loss_fn.weights.as_dict(), "compound": weight, "feature_temporal": 0.0, "shift": 0.0}
    terms["total"] = sum(weights[k] * terms[k] for k in TRAIN_TERMS)
    return terms


# --- the budget ---------------------------------------------------------------------------------

class Budget:
    """The wall-clock budget of a run: ``seconds`` from creation, the last ``reserve`` of them kept
    for export and the check. ``clock``: a monotonic clock in seconds (tests pass a fake one)."""

    def __init__(self, seconds: float, reserve: float, clock: Callable[[], float] = time.monotonic,
                 started: float | None = None):
        self.clock = clock
        self.start = clock() if started is None else started
        self.end = self.start + seconds
        self.train_end = self.end - reserve

    def elapsed(self) -> float:
        return self.clock() - self.start

    def training_left(self) -> float:
        return self.train_end - self.clock()


def default_reserve(seconds: float) -> float:
    """The end of a budget kept for export and the check: 15%, 5 s to 150 s (the check of a 15-minute
    run took 40-100 s on a 2-core CPU shared with other jobs)."""
    return min(max(0.15 * seconds, 5.0), 150.0)


# --- the run ------------------------------------------------------------------------------------

def quick_train(config: QuickConfig, *, check: Callable[[torch.nn.Module, Content], dict] | None = None,
                clock: Callable[[], float] = time.monotonic, started: float | None = None,
                say: Callable[[str], None] = print, progress: bool = True) -> QuickResult:
    """Train ``config``'s painting within its budget and export the model; returns what it made.

    ``check(net, content)``, if given, measures the finished network (E_warp and style loss ratios
    on a content clip); its dict goes into the card's ``metrics``. ``started``: when the budget began on
    ``clock`` (default: now; the command passes its own start, so that imports count too).

    Everything the user gave is read and checked before ``runs/NAME`` is created, so bad input leaves
    nothing behind (ConfigError, VideoError, ModelError); an error after that removes the folder this
    call created, unless a model was written in it.
    """
    budget = Budget(60.0 * config.max_minutes, config.reserve_seconds if config.reserve_seconds is not None
                    else default_reserve(60.0 * config.max_minutes), clock, started)
    config.check()
    check_name(config.name)
    style = read_style(config.style)
    files = RunFiles(config.run_dir)
    files.check_start(False, config.overwrite)
    content = load_content(*find_content(config.content), short_side=round(config.size * 1.25))
    say(f"quick run '{config.name}': at most {config.max_minutes:g} min in all (setup, training, export, "
        "check)")

    setup = setup_device(config.device, config.threads)
    torch.manual_seed(config.seed)
    vgg = VGG19(last_layer="relu4_2")
    if config.init:
        entry = load_model(config.init, runs_dir=config.runs_dir).entry
        warm = WarmStart(entry, math.nan, [(entry.name, math.nan)])
        say(f"warm start: {entry.name} (given by --init)")
    else:
        warm = choose_warm_start(style, vgg)
        say(warm.line())
    card = read_card(warm.entry)
    trained = card.trained.get("weights", {})
    weights = LossWeights(**{k: float(trained.get(k, getattr(LossWeights, k))) for k in ("content", "style",
                                                                                          "tv", "temporal")})
    if not config.temporal:
        weights.temporal = 0.0
    weights.style = config.style_weight if config.style_weight is not None else STYLE_BOOST * weights.style
    compound = (float(trained.get("compound", TrainConfig.compound_weight)),
                float(card.trained.get("compound", {}).get("shift", TrainConfig.compound_shift)),
                float(card.trained.get("compound", {}).get("noise", TrainConfig.compound_noise)))
    net = build_net("huang", **card.net_kwargs)
    net.load_state_dict(load_init(str(warm.entry.weights), net, config.runs_dir))
    net = net.to(setup.device)
    train_config = TrainConfig(
        style=str(config.style), name=config.name, runs_dir=config.runs_dir, net="huang",
        init=str(warm.entry.weights), steps=0, batch=config.batch, size=config.size,
        style_size=config.style_size, content_weight=weights.content, style_weight=weights.style,
        tv_weight=weights.tv, temporal_weight=weights.temporal, compound_weight=compound[0],
        compound_shift=compound[1], compound_noise=compound[2], tone=float(card.net.get("tone", 0.0)),
        lr=config.lr, scale=None, seed=config.seed, device=config.device, threads=config.threads,
        max_minutes=config.max_minutes)
    loss_fn = HybridLoss(vgg, to_tensor(resize_longer_side(style, config.style_size)), weights,
                         list(train_config.style_layers), list(train_config.content_layers)).to(setup.device)
    rng = np.random.default_rng(config.seed)
    samples = make_samples(content, config.size, config.samples, rng, "dis" if config.temporal else None)
    preview = _preview_frame(content, config.size)
    say(f"content: {', '.join(content.describe())}; {len(samples)} pairs of {config.size} px crops; "
        f"ready after {budget.elapsed():.0f} s; training until {budget.train_end - budget.start:.0f} s")

    created = not config.run_dir.exists()
    try:
        config.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the run folder {config.run_dir}: {exc.strerror or exc}") from None
    with hold_lock(config.run_dir / ".lock") as mine:
        if not mine:    # another run of this name (quick, train or distill): its folder is left alone
            raise ConfigError(f"run '{config.name}' is busy: another process is running it in "
                              f"{config.run_dir}; wait for it to end, or give another --name")
        try:
            files.prepare(train_config, False, config.overwrite)
            with atomic_output(config.run_dir / "quick.json") as tmp:
                tmp.write_text(json.dumps({**dataclasses.asdict(config), "warm_start": warm.entry.name,
                                           "style_distance": warm.distance, "content": content.describe()},
                                          indent=2) + "\n", encoding="utf-8")
            steps, seconds, stopped, last = _loop(net, loss_fn, samples, preview, compound, config, setup,
                                                  files, budget, rng, say, progress)
            done = dataclasses.replace(train_config, steps=steps)
            weights_path = _export(net, done, setup, seconds, last, warm, content, stopped, None)
            result_check = None
            if check is not None:
                say(f"model written at {budget.elapsed():.0f} s; checking it on a content clip")
                net.eval()
                result_check = check(net, content)
                _export(net, done, setup, seconds, last, warm, content, stopped, result_check)
        except BaseException:
            if created and not (config.run_dir / f"{config.name}.safetensors").exists():
                shutil.rmtree(config.run_dir, ignore_errors=True)
            raise
    return QuickResult(config.run_dir, weights_path, steps, seconds, stopped, warm, last, result_check)


def _preview_frame(content: Content, size: int) -> torch.Tensor:
    """(1, 3, H, W) [0, 1]: the middle frame of the first clip (else the first photo), shorter side
    ``size * 4 / 3`` px."""
    image = content.clips[0][1][len(content.clips[0][1]) // 2] if content.clips else content.photos[0][1]
    return to_tensor(np.ascontiguousarray(shorter_side(image, round(size * 4 / 3))))


def _loop(net, loss_fn, samples, preview, compound, config: QuickConfig, setup, files: RunFiles,
          budget: Budget, rng: np.random.Generator, say, progress: bool
          ) -> tuple[int, float, str, dict[str, float]]:
    """Steps until the budget's training time, ``max_steps`` or Ctrl-C; previews every
    ``preview_seconds``. Returns (steps, seconds, why it stopped, last logged row)."""
    from tqdm import tqdm

    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    cache = ContentCache(loss_fn)
    files.start_log(0)
    start = budget.clock()
    total = max(budget.train_end - start, 0.0)
    bar = tqdm(total=round(total), disable=not progress, unit="s", dynamic_ncols=True, desc=config.name,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
    next_preview = start
    sums = dict.fromkeys(("total", *TRAIN_TERMS), 0.0)
    step, stopped, last, counted, bad = 0, "budget", {}, 0, 0
    try:
        while True:
            now = budget.clock()
            if now >= next_preview:
                _write_preview(net, preview, setup, files, step)
                next_preview = now + config.preview_seconds
            if budget.training_left() <= 0:
                break
            if config.max_steps is not None and step >= config.max_steps:
                stopped = "steps"
                break
            indices = [int(i) for i in rng.integers(len(samples), size=config.batch)]
            batch = batch_tensors([samples[i] for i in indices], setup.device)
            net.train()
            terms = quick_terms(net, loss_fn, batch, cache(indices, batch["frame_t"]), compound)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            if not torch.isfinite(terms["total"]):
                bad += 1
                if bad >= 5:
                    raise ConfigError("quick training diverged (the loss became NaN five steps in a row); "
                                      "try a lower --lr")
                continue
            bad = 0
            optimizer.step()
            step += 1
            for k in sums:
                sums[k] += float(terms[k].detach())
            counted += 1
            if step % 10 == 0:
                last = _log(files, sums, counted, step, config.lr, budget.elapsed())
                counted = 0
            bar.n = min(round(budget.clock() - start), bar.total)
            bar.set_postfix_str(f"step {step}, style {float(terms['style'].detach()):.3g}", refresh=True)
    except KeyboardInterrupt:
        stopped = "interrupt"
        say("interrupted: writing the model of the steps taken")
    finally:
        bar.close()
    if counted:
        last = _log(files, sums, counted, step, config.lr, budget.elapsed())
    _write_preview(net, preview, setup, files, step)
    return step, budget.clock() - start, stopped, last


def _log(files: RunFiles, sums: dict[str, float], counted: int, step: int, lr: float,
         seconds: float) -> dict[str, float]:
    row = {"step": step, **{k: v / counted for k, v in sums.items()}, "lr": lr, "seconds": round(seconds, 3)}
    files.log(row)
    for k in sums:
        sums[k] = 0.0
    return row


def _write_preview(net, preview: torch.Tensor, setup, files: RunFiles, step: int) -> None:
    """previews/step_N.png: the preview frame | its stylized version."""
    net.eval()
    with torch.no_grad():
        frame = preview.to(setup.device)
        out = net(frame).float()
    write_image(files.previews / f"step_{step:06d}.png", to_image(torch.cat([frame[0], out[0]], dim=2)))


def _export(net, config: TrainConfig, setup, seconds: float, last: dict[str, float], warm: WarmStart,
            content: Content, stopped: str, measured: dict | None) -> Path:
    """Write runs/NAME/NAME.safetensors and its card as every run does, the card telling the quick run."""
    def quick_card(card):
        style = Path(config.style).name
        description = (f"huang network trained quickly (vidstyle train --quick) on the style image {style}: "
                       f"{config.steps} steps of {config.batch} frame pair(s) at {config.size} px in "
                       f"{duration_words(seconds)} on {card.trained['hardware']}, starting from the shipped "
                       f"model {warm.entry.name}; content: {', '.join(content.describe())}.")
        trained = {**card.trained, "data": content.describe(),
                   "quick": {"warm_start": warm.entry.name, "style_distance": warm.distance,
                             "stopped_by": stopped,
                             "losses": "content and style on frame t of each pair, content features cached"}}
        return dataclasses.replace(card, description=description, trained=trained,
                                   metrics={**card.metrics, **(measured or {})})

    return export_model(net, config, setup, seconds, last, edit_card=quick_card)
