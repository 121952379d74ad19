"""Distillation: a trained model's look in a cheaper network (``vidstyle distill TEACHER --name NEW``).

A student network (``lite`` by default, :mod:`vidstyle.models.netlite`) learns to reproduce the teacher's
output on the training frames: at its simplest no loss network and no style image, only the teacher.
Each step draws ``batch`` frame pairs (both frames are used) from flow files and photos, as training
does, and minimises

    |S(x') - T(x)|_1  +  |grad S(x') - grad T(x)|_1

where T is the teacher's output before its tone gate, S the student's, grad the horizontal and
vertical pixel differences (they keep the strokes sharp), and x' is x with Gaussian noise of up to
``noise`` on half the images: the student learns to give the teacher's clean answer for a noisy
frame, which keeps it as steady on video as the teacher was trained to be. A ``lite2`` student
started from a ``lite`` network (``init``) begins as that network with its extra norms folded
(:func:`vidstyle.models.netlite.fold_norms`); a student with wider stages (``channels``) than its
``init`` begins as the init widened, computing the same picture (:func:`vidstyle.models.netlite.widen`).
The student takes over
the teacher's tone gate. Five optional terms join it: ``feature_weight`` x the relative error of the
student's VGG-19 Gram matrices against the teacher's output's (:func:`feature_loss`), ``style_weight``
x their relative error against the style image's (:func:`gram_error`; the teacher's own painting by
default), ``content_weight`` x the relative error of the student's relu4_2 feature maps against the
teacher's (:func:`content_error`), ``layout_weight`` x the L1 error of the two outputs averaged over
8 x 8 blocks (:func:`layout_error`), and ``temporal_weight`` x the student's masked warping error over
the teacher's on the same pairs (:func:`temporal_ratio`). With ``blur``, that share of the pairs is
blurred first, both frames by one random motion streak or Gaussian (:func:`blur_kernel`), for
teacher and student alike: the student learns to paint texture on a shaken frame as its teacher does.

The run folder ``RUNS/NAME/`` is a training run's (:mod:`vidstyle.training.runfiles`): config.json,
losses.csv (step, loss, seconds), checkpoint.pt (every ``checkpoint_every`` steps and on stop, with
the noise generator's state, so ``resume=True`` continues exactly), and at the end
``NAME.safetensors`` + ``NAME.json``, whose card is the teacher's with the student's network and a
``distilled`` section.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from vidstyle.errors import ConfigError
from vidstyle.models.net import build_net, count_parameters
from vidstyle.training.data import PairDataset
from vidstyle.training.distillconfig import LITE_NETS, DistillConfig
from vidstyle.training.losses import CONTENT_LAYERS, STYLE_LAYERS, gram, temporal_loss
from vidstyle.training.runfiles import RunFiles, load_checkpoint, restore_generators, save_checkpoint
from vidstyle.training.trainconfig import check_same_run

LOG_FIELDS = ("step", "loss", "seconds")
# The layout term's block side in pixels; rows and columns past the last whole block are left out.
LAYOUT_BLOCK = 8


def _gradients(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return y[..., :, 1:] - y[..., :, :-1], y[..., 1:, :] - y[..., :-1, :]


def distill_loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """L1 of the pixels plus L1 of their horizontal and vertical differences."""
    sx, sy = _gradients(student_out)
    tx, ty = _gradients(teacher_out)
    return F.l1_loss(student_out, teacher_out) + F.l1_loss(sx, tx) + F.l1_loss(sy, ty)


def gram_error(features: dict[str, torch.Tensor], target_grams: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over the style layers of |G - G_target|^2 / |G_target|^2, G the Gram matrices of
    ``features`` (the training style loss's layers and normalization), mean over the images.
    ``target_grams`` are (N, C, C) per image, or (1, C, C) for one target shared by all (a style image).
    Relative, so one weight serves every style."""
    total = next(iter(features.values())).new_zeros((), dtype=torch.float32)
    for layer in STYLE_LAYERS:
        g, g_t = gram(features[layer]), target_grams[layer]
        total = total + ((g - g_t).square().sum((1, 2)) / g_t.square().sum((1, 2)).clamp_min(1e-12)).mean()
    return total


def target_grams(vgg: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The Gram matrices of ``images`` at the style layers, without gradients: a Gram term's targets."""
    with torch.no_grad():
        return {k: gram(v) for k, v in vgg(images, STYLE_LAYERS).items()}


def content_error(features: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over the content layers of |F - F_target|^2 / |F_target|^2 per image, mean over the
    images: where the Gram terms compare texture statistics, this compares the feature maps
    themselves, so it holds what is drawn where. Relative, as :func:`gram_error`."""
    total = next(iter(features.values())).new_zeros((), dtype=torch.float32)
    for layer in CONTENT_LAYERS:
        f, f_t = features[layer].float(), target[layer].float()
        error = (f - f_t).square().sum((1, 2, 3)) / f_t.square().sum((1, 2, 3)).clamp_min(1e-12)
        total = total + error.mean()
    return total


def layout_error(student_out: torch.Tensor, teacher_out: torch.Tensor,
                 block: int = LAYOUT_BLOCK) -> torch.Tensor:
    """Mean absolute difference of the two outputs averaged over ``block`` x ``block`` blocks: the
    teacher's light and colour place by place, at 1/``block`` of the resolution, with the texture
    inside each block left to the Gram terms. The pixel term asks for the same at full resolution,
    but beside Gram terms weighted in the tens it carries too little to keep a white subject as
    light as the teacher draws it."""
    return (F.avg_pool2d(student_out, block) - F.avg_pool2d(teacher_out, block)).abs().mean()


def feature_loss(vgg: torch.nn.Module, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """:func:`gram_error` of the student's output against the teacher's: the teacher's texture
    statistics, which an L1 match of the pixels blurs."""
    return gram_error(vgg(student_out, STYLE_LAYERS), target_grams(vgg, teacher_out))


def style_image_grams(vgg: torch.nn.Module, config: DistillConfig, card: Any,
                      device: torch.device) -> dict[str, torch.Tensor]:
    """The style term's targets: the Gram matrices (1, C, C) of ``config.style``, else of the image the
    teacher's card names in data/styles/ (by its SHA-256 when the card has one), at the longer side the
    teacher was trained with. ConfigError, one line, when there is no such image."""
    from vidstyle.io.images import load_style_image, to_tensor
    from vidstyle.training.warmstart import STYLES_DIR, card_style_image

    if config.style:
        path = Path(config.style)
    else:
        path = card_style_image(card)
        if path is None:
            raise ConfigError(f"--style-weight: the teacher's style image {card.style_image or '(none)'} "
                              f"is not in {STYLES_DIR}; give it with --style IMAGE")
    image = load_style_image(path, int(card.trained.get("style_size", 512)))
    return target_grams(vgg, to_tensor(image).to(device))


def temporal_ratio(student_out: torch.Tensor, teacher_out: torch.Tensor, flow_bw: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """The student's masked warping error between the frames of each pair over the teacher's, both as
    :func:`vidstyle.training.losses.temporal_loss`. Outputs are (2B, 3, H, W): the B first frames,
    then the B second ones; flow_bw (B, 2, H, W) and mask (B, 1, H, W) belong to the pairs. 1 when the
    student flickers as much as the teacher. Being relative, the weight does not depend on how large a
    style's warping error is (though the best one still differed by style: docs/fast-networks.md). In
    training the student's second frames are the noisy ones, so the term also asks it to ignore noise."""
    half = student_out.shape[0] // 2
    with torch.no_grad():
        reference = temporal_loss(teacher_out[:half], teacher_out[half:], flow_bw, mask)
    return temporal_loss(student_out[:half], student_out[half:], flow_bw, mask) / reference.clamp_min(1e-8)


def _noisy(x: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """Half of the batch (the second half) with Gaussian noise of a random level up to ``noise``."""
    if noise <= 0:
        return x
    half = x.shape[0] // 2
    level = torch.rand(x.shape[0] - half, 1, 1, 1, generator=generator, device=x.device) * noise
    noise_map = torch.randn(x[half:].shape, generator=generator, device=x.device)
    noisy = (x[half:] + level * noise_map).clamp(0.0, 1.0)
    return torch.cat([x[:half], noisy])


BLUR_SIDE = 15   # the blur kernels' side: motion streaks up to 13 px, Gaussians up to sigma 2


def blur_kernel(generator: torch.Generator) -> torch.Tensor:
    """A random (BLUR_SIDE, BLUR_SIDE) kernel summing to 1: half the time a straight motion streak
    of 3-13 px at any angle (a shaken or panning camera), else a Gaussian of sigma 0.6-2 px (focus)."""
    draw = torch.rand(3, generator=generator).tolist()
    centre = BLUR_SIDE // 2
    if draw[0] < 0.5:
        length, angle = 3 + 10 * draw[1], math.pi * draw[2]
        t = torch.linspace(-length / 2, length / 2, 8 * BLUR_SIDE)
        cols = (centre + t * math.cos(angle)).round().long().clamp(0, BLUR_SIDE - 1)
        rows = (centre + t * math.sin(angle)).round().long().clamp(0, BLUR_SIDE - 1)
        kernel = torch.zeros(BLUR_SIDE, BLUR_SIDE)
        kernel.index_put_((rows, cols), torch.ones(t.numel()), accumulate=True)
    else:
        sigma = 0.6 + 1.4 * draw[1]
        axis = torch.arange(BLUR_SIDE, dtype=torch.float32) - centre
        line = torch.exp(-axis.square() / (2 * sigma * sigma))
        kernel = line[:, None] * line[None, :]
    return kernel / kernel.sum()


def _blurred(frames: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """``frames`` (2B, 3, S, S: the B first frames of the pairs, then their B second frames) with a
    ``share`` of the pairs blurred, both frames by the same :func:`blur_kernel`."""
    if share <= 0:
        return frames
    pairs, out = frames.shape[0] // 2, frames.clone()
    pad = BLUR_SIDE // 2
    for i in range(pairs):
        picked = float(torch.rand(1, generator=generator)) < share
        kernel = blur_kernel(generator)   # drawn for every pair, so the draws do not depend on share
        if picked:
            both = frames[[i, pairs + i]]
            weight = kernel.to(frames).expand(3, 1, BLUR_SIDE, BLUR_SIDE)
            blurred = F.conv2d(F.pad(both, (pad, pad, pad, pad), mode="reflect"), weight, groups=3)
            out[[i, pairs + i]] = blurred
    return out


def _batch(dataset: PairDataset, step: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2 * batch frames (both of each pair) of step ``step``, (2B, 3, S, S), with the pairs'
    backward flows (B, 2, S, S) and masks (B, 1, S, S); reproducible by step."""
    items = [dataset[dataset.key_for_draw(step * batch + i)] for i in range(batch)]
    frames = torch.cat([torch.stack([it[key] for it in items]) for key in ("frame_t", "frame_t1")])
    return frames, torch.stack([it["flow_bw"] for it in items]), torch.stack([it["mask"] for it in items])


CALIBRATION_STEPS = 8   # a lite network folded into lite2 is measured on this many steps' frames


def _folded(net: torch.nn.Module, dataset: PairDataset, batch: int) -> torch.nn.Module:
    """A trained lite network as a lite2 one (:func:`vidstyle.models.netlite.fold_norms`), its norms
    measured on the first frames of the run's first CALIBRATION_STEPS steps."""
    from vidstyle.models.netlite import fold_norms

    frames = torch.cat([_batch(dataset, step, batch)[0][:batch] for step in range(CALIBRATION_STEPS)])
    return fold_norms(net, frames)


def _start_from(init: torch.nn.Module, student: torch.nn.Module, config: DistillConfig,
                dataset: PairDataset) -> None:
    """Load the student's first weights from the ``init`` network: a lite network's norms folded for a
    lite2 student, narrower lite stages widened; ConfigError when it cannot become the student."""
    from vidstyle.models.netlite import widen

    if config.net == "lite2" and init.config["name"] == "lite":
        init = _folded(init, dataset, config.batch)
    if init.config["name"] != config.net:
        raise ConfigError(f"--init {config.init}: a {init.config['name']} network, and the student is "
                          f"{config.net} (--net {init.config['name']} continues it as it is)")
    if config.net in LITE_NETS and init.config["channels"] != student.config["channels"]:
        try:
            init = widen(init, student.config["channels"], seed=config.seed)
        except (ValueError, KeyError):
            pass   # narrower or another depth: refused below, as any other misfit
    try:
        student.load_state_dict(init.state_dict())
    except RuntimeError:
        raise ConfigError(f"--init {config.init}: not a {config.net} network of this shape "
                          f"(channels {student.config['channels']})") from None


def _lr_at(config: DistillConfig, step: int) -> float:
    """Cosine decay from ``lr`` to lr / 20 over the run."""
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / config.steps)))


def distill(config: DistillConfig, *, resume: bool = False, overwrite: bool = False, log=print) -> Path:
    """Run (or resume) a distillation; returns the written model's path. See the module docstring.

    ConfigError (one line) for a bad config, a missing teacher or data, a run folder that holds a
    run without ``resume`` or ``overwrite``, another process running it ("busy"), or nothing to
    resume. A new run that ends before its first checkpoint leaves nothing (:meth:`RunFiles.hold`)."""
    config.check()
    files = RunFiles(config.run_dir, LOG_FIELDS, previews=False)
    with files.hold(resume):
        return _distill(config, files, resume, overwrite, log)


def _distill(config: DistillConfig, files: RunFiles, resume: bool, overwrite: bool, log) -> Path:
    from vidstyle.device import cap_threads, resolve_device
    from vidstyle.models.zoo import load_model
    from vidstyle.training.modelcard import hardware_words
    from vidstyle.training.setup import Setup

    files.check_start(resume, overwrite)
    state = load_checkpoint(files.checkpoint) if resume else None
    if state:
        if config.net is None:   # the run's own student, as saved
            config.net = state["config"].get("net")
        check_same_run(state["config"], config)
    if config.threads:
        torch.set_num_threads(cap_threads(config.threads))
    device = resolve_device(config.device)
    teacher = load_model(config.teacher)
    teacher.net.to(device)
    tone = float(getattr(teacher.net, "tone", 0.0))
    dataset = PairDataset(config.flows, photos=config.photos, photo_fraction=config.photo_fraction,
                          crop=config.size, seed=config.seed)
    torch.manual_seed(config.seed)   # the student's first weights: a run is a function of its config
    init = load_model(config.init).net if config.init and not resume else None
    if config.net is None:   # the init's kind, resolved once and saved with the run
        config.net = init.config["name"] if init is not None and init.config["name"] in LITE_NETS else "lite"
    if init is not None and config.channels is None and config.net in LITE_NETS:
        config.channels = list(init.config["channels"])   # saved with the run: --resume builds the same
    widths = {"channels": config.channels} if config.channels is not None else {}
    student = build_net(config.net, tone=tone, **widths).to(device)
    if init is not None:
        _start_from(init, student, config, dataset)
    vgg, painting = None, None
    if config.feature_weight > 0 or config.style_weight > 0 or config.content_weight > 0:
        from vidstyle.training.vgg import VGG19

        vgg = VGG19(last_layer=STYLE_LAYERS[-1]).to(device)
        if config.style_weight > 0:
            painting = style_image_grams(vgg, config, teacher.card, device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
    generators = {"noise": torch.Generator(device).manual_seed(config.seed * 1_000_003)}
    if config.blur > 0:   # only then: checkpoints of runs without blur hold no such generator
        generators["blur"] = torch.Generator().manual_seed(config.seed * 1_000_033 + 1)
    start, seconds = 0, 0.0
    if state:
        try:
            student.load_state_dict({k: v.to(device) for k, v in state["model"].items()})
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError):
            raise ConfigError(f"{files.checkpoint}: its weights do not fit the run's network") from None
        restore_generators(state, generators)
        start, seconds = int(state["step"]), float(state["seconds"])
    files.prepare(config, resume, overwrite)
    files.start_log(start)
    log(f"distill {config.teacher} ({teacher.card.net_name}, {count_parameters(teacher.net)} parameters) "
        f"into {config.net} ({count_parameters(student)} parameters): steps {start}..{config.steps}, "
        f"{dataset.num_video} video pairs and {dataset.num_photos} photos")
    deadline = None if config.max_minutes is None else time.monotonic() + 60 * config.max_minutes
    student.train()
    began, step, recent = time.monotonic(), start, []
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(config, step)
        frames, flow_bw, mask = (t.to(device) for t in _batch(dataset, step, config.batch))
        if config.blur > 0:
            frames = _blurred(frames, config.blur, generators["blur"])
        with torch.no_grad():
            target = teacher.net.forward_ungated(frames)
        out = student.forward_ungated(_noisy(frames, config.noise, generators["noise"]))
        loss = distill_loss(out, target)
        if config.layout_weight > 0:
            loss = loss + config.layout_weight * layout_error(out, target)
        if vgg is not None:  # on the clean first frames of the pairs only: VGG is most of a step's time
            clean = slice(0, config.batch)
            features = vgg(out[clean], STYLE_LAYERS)
            if config.feature_weight > 0 or config.content_weight > 0:
                with torch.no_grad():
                    teacher_features = vgg(target[clean], STYLE_LAYERS)
            if config.feature_weight > 0:
                grams = {k: gram(v) for k, v in teacher_features.items()}
                loss = loss + config.feature_weight * gram_error(features, grams)
            if config.content_weight > 0:
                loss = loss + config.content_weight * content_error(features, teacher_features)
            if painting is not None:
                loss = loss + config.style_weight * gram_error(features, painting)
        if config.temporal_weight > 0:
            loss = loss + config.temporal_weight * temporal_ratio(out, target, flow_bw, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        recent.append(loss.item())
        stop = deadline is not None and time.monotonic() > deadline
        if step % config.checkpoint_every == 0 or step == config.steps or stop:
            elapsed = seconds + time.monotonic() - began
            row = {"step": step, "loss": sum(recent) / len(recent), "seconds": round(elapsed, 1)}
            files.log(row)
            log(f"step {step}/{config.steps}  loss {row['loss']:.4f}  {elapsed / 60:.1f} min")
            recent = []
            save_checkpoint(files.checkpoint, student, optimizer, step, config, elapsed, generators)
        if stop:
            log(f"stopped after --max-minutes {config.max_minutes:g} at step {step}; "
                f"--resume continues to {config.steps}")
            break
    student.eval()
    return _write_model(student.cpu(), teacher, config, step, seconds + time.monotonic() - began,
                        hardware_words(Setup(device)))


def _write_model(student: torch.nn.Module, teacher: Any, config: DistillConfig, step: int,
                 seconds: float, hardware: str) -> Path:
    """RUNS/NAME/NAME.safetensors (fp16) + card: the teacher's card with the student's network."""
    from vidstyle.models.zoo import ModelCard, save_model
    from vidstyle.training.modelcard import duration_words

    card = teacher.card
    note = (f"Distilled from {card.name} ({card.net_name} network) into the {config.net} network: "
            f"{step} steps of {config.batch} frame pairs at {config.size} px, in {duration_words(seconds)} "
            f"on {hardware}.")
    new = ModelCard(
        name=config.name, net=dict(student.config), style_image=card.style_image,
        description=f"{note} The teacher: {card.description}".strip(), trained=dict(card.trained),
        metrics={})
    init_name, before = _init_record(config.init)
    new.trained["distilled"] = {"teacher": card.name, "teacher_net": card.net, "steps": step,
                                "batch": config.batch, "size": config.size, "noise": config.noise,
                                "feature_weight": config.feature_weight,
                                "temporal_weight": config.temporal_weight, "init": init_name,
                                "blur": config.blur, "photo_fraction": config.photo_fraction,
                                "style_weight": config.style_weight,
                                "content_weight": config.content_weight,
                                "layout_weight": config.layout_weight,
                                "style": Path(config.style).name if config.style else None,
                                "lr": config.lr, "seconds": round(seconds, 1), "hardware": hardware}
    if before is not None:
        new.trained["distilled"]["before"] = before
    return save_model(student, config.run_dir / f"{config.name}.safetensors", new, dtype=torch.float16)


def _init_record(init: str | None) -> tuple[str | None, Any]:
    """How the card names the ``--init`` model: by its card's name, not the path it was given (a card
    travels to other machines), and that model's own distillation record, which becomes ``before``:
    a student distilled on from another keeps its whole history. The init as given, and no history,
    when its card can no longer be read (a --resume after the file moved)."""
    if not init:
        return None, None
    from vidstyle.errors import ModelError
    from vidstyle.models.zoo import find_model, read_card

    try:
        card = read_card(find_model(init))
    except (ModelError, OSError):
        return init, None
    return card.name, card.trained.get("distilled")
