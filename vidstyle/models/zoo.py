"""Named models: the shipped ones in ``vidstyle/weights/``, the user's own, and model files by path.

A model is two files side by side: ``<name>.safetensors``, the stylizing network's state dict (fp32 or
fp16; safetensors, never pickle, so opening a model cannot run code), and ``<name>.json``, its card::

    {"name": "starwars_blue", "net": {"name": "huang", ...build_net kwargs},
     "style_image": "poster_blue.jpg", "description": "...",
     "trained": {"steps": ..., "size": ..., "device": ..., "hardware": ..., "seconds": ...,
                 "style_sha256": ..., "data": [...]},
     "metrics": {"style_loss": ..., "content_loss": ..., "warping_error": ..., "clip": ...}}

:func:`save_model` also stores the card in the safetensors header, so a lone ``.safetensors`` file
still loads. Where names are looked up, first match wins:

1. each folder in ``$VIDSTYLE_MODELS`` (``os.pathsep``-separated),
2. ``runs/`` in the working directory (train output: ``runs/NAME/NAME.safetensors`` + ``NAME.json``),
3. the shipped models in ``vidstyle/weights/``.

User folders come first so that retraining a shipped name on one's own style image
(``train_temporal.py --name starwars_blue ...``) makes ``--model starwars_blue`` use the new model.
In a folder, a model is ``<name>.safetensors`` or ``<name>/<name>.safetensors``.

Cards name things, never machine paths: ``style_image`` is a file name (the shipped models' images are
in ``data/styles/``), training data are folder names with counts, so a card reads the same anywhere.

Nothing is built from a card before the card has been checked against the tensors in the file (their
names and shapes, read from the header alone): a card cannot make the loader allocate a network the
file does not hold.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from vidstyle.errors import ModelError
from vidstyle.fsutil import atomic_output

# torch is imported only where a network is built or weights are checked: finding a model and
# reading its card need none, so an onnx job with a cached export never loads it (vidstyle.models.lazymodel).
if TYPE_CHECKING:
    import torch

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
ENV_VAR = "VIDSTYLE_MODELS"
RUNS_DIR = Path("runs")
SUFFIX = ".safetensors"
CARD_KEY = "vidstyle_card"      # safetensors header metadata entry holding the card as JSON
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl"}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
# Files a user may hand to --model by mistake: videos, flow files, other frameworks' models.
_OTHER_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".h5", ".onnx", ".t7", ".pb", ".tflite",
                   ".keras", ".npz", ".json"}
_TEXT_FIELDS = ("name", "style_image", "description")


@dataclass(frozen=True)
class ModelCard:
    """What a model is: the network to build, what it was trained on, how well it does."""

    name: str
    net: dict[str, Any]                    # {"name": "huang" | "johnson", **build_net kwargs}
    style_image: str = ""
    description: str = ""
    trained: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def net_name(self) -> str:
        return str(self.net["name"])

    @property
    def net_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.net.items() if k != "name"}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModelCard:
        """Check and convert a parsed card; ``where`` names its file in error messages."""
        if not isinstance(data, dict):
            raise ModelError(f"{where}: model card is not a JSON object")
        net = data.get("net")
        if not isinstance(net, dict) or not isinstance(net.get("name"), str):
            raise ModelError(f"{where}: model card lacks \"net\": {{\"name\": ...}}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("name", Path(where).stem)
        for key in ("trained", "metrics"):
            if not isinstance(values.get(key, {}), dict):
                raise ModelError(f"{where}: \"{key}\" in the model card is not an object")
        for key in _TEXT_FIELDS:
            if not isinstance(values.get(key, ""), str):
                raise ModelError(f"{where}: \"{key}\" in the model card is not a string")
        return cls(**values)


@dataclass(frozen=True)
class ModelEntry:
    """Where a model lives. ``source`` is "shipped", "user" or "path"."""

    name: str
    weights: Path
    source: str

    @property
    def card_path(self) -> Path:
        return self.weights.with_suffix(".json")


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode, no gradients, fp32 on CPU) and its card."""

    net: torch.nn.Module
    card: ModelCard
    entry: ModelEntry


def model_folders(runs_dir: str | os.PathLike | None = RUNS_DIR,
                  weights_dir: str | os.PathLike = WEIGHTS_DIR,
                  env: Mapping[str, str] | None = None) -> list[tuple[str, Path]]:
    """The folders searched for named models, first match first: ``[(source, folder), ...]``."""
    env = os.environ if env is None else env
    folders = [("user", Path(p).expanduser()) for p in env.get(ENV_VAR, "").split(os.pathsep) if p]
    if runs_dir is not None:
        folders.append(("user", Path(runs_dir)))
    folders.append(("shipped", Path(weights_dir)))
    return folders


def _models_in(folder: Path) -> list[Path]:
    """``<name>.safetensors`` and ``<name>/<name>.safetensors`` in ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    found = {p.stem: p for p in folder.glob(f"*/*{SUFFIX}") if p.stem == p.parent.name}
    # "x.tmp.safetensors" is a model still being written (fsutil.atomic_output): not one yet.
    found.update({p.stem: p for p in folder.glob(f"*{SUFFIX}")
                  if p.is_file() and not p.stem.endswith(".tmp")})
    return [found[name] for name in sorted(found)]


def list_models(include_shadowed: bool = False, **folders_kw) -> list[ModelEntry]:
    """Every named model, in lookup order; a name found twice is listed once (the one that wins)
    unless ``include_shadowed``. ``folders_kw`` go to :func:`model_folders`."""
    entries, seen = [], set()
    for source, folder in model_folders(**folders_kw):
        for path in _models_in(folder):
            if include_shadowed or path.stem not in seen:
                entries.append(ModelEntry(path.stem, path, source))
            seen.add(path.stem)
    return entries


def _looks_like_path(spec: str) -> bool:
    suffix = Path(spec).suffix.lower()
    return ("/" in spec or os.sep in spec
            or suffix in {SUFFIX, *_PICKLE_SUFFIXES, *_IMAGE_SUFFIXES, *_OTHER_SUFFIXES})


def find_model(spec: str | os.PathLike, **folders_kw) -> ModelEntry:
    """Resolve ``--model``: a path to a ``.safetensors`` file (or a run folder holding
    ``NAME/NAME.safetensors``), else a name looked up as the module docstring says.

    Raises ModelError for a missing file, a pickle file, a style image given in place of a model, or
    an unknown name (suggesting close names and listing the known ones).
    """
    spec = os.fspath(spec)
    if not spec.strip():
        raise ModelError("--model is empty: give a model name (see `vidstyle models`) or a .safetensors file")
    if _looks_like_path(spec) or Path(spec).expanduser().is_file():
        return _entry_for_path(spec)
    entries = list_models(**folders_kw)
    for entry in entries:
        if entry.name == spec:
            return entry
    raise ModelError(_unknown_name_message(spec, entries, folders_kw.get("runs_dir", RUNS_DIR)))


def _entry_for_path(spec: str) -> ModelEntry:
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / f"{path.name}{SUFFIX}"
        if not path.is_file():
            raise ModelError(f"{spec}: a folder without {path.name}" + _unfinished_run_hint(path.parent))
    suffix = path.suffix.lower()
    if suffix in _IMAGE_SUFFIXES:
        raise ModelError(f"{spec}: that is an image: train a model on it with train_temporal.py "
                         f"--style {spec} --flows flows/ --name NAME, then use --model NAME")
    if suffix in _PICKLE_SUFFIXES:
        raise ModelError(f"{spec}: only .safetensors model files are accepted "
                         "(pickle checkpoints can run code when opened)")
    if path.exists() and not path.is_file():    # a device or a FIFO (opening one may never end)
        raise ModelError(f"{spec}: not a model file but a device or pipe: vidstyle models are "
                         ".safetensors files (see `vidstyle models` for the names)")
    if suffix != SUFFIX and (suffix in _OTHER_SUFFIXES or path.is_file()):
        raise ModelError(f"{spec}: not a model file: vidstyle models are .safetensors files "
                         "(see `vidstyle models` for the names)")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    return ModelEntry(path.stem, path, "path")


def _unfinished_run_hint(run_dir: Path) -> str:
    """Advice when ``run_dir`` is a training run that has not exported its model (yet)."""
    if (run_dir / "checkpoint.pt").is_file():
        return (f" (the training run there has not finished; continue it with train_temporal.py "
                f"--name {run_dir.name} --resume)")
    return ""


def _unknown_name_message(spec: str, entries: list[ModelEntry], runs_dir) -> str:
    """'unknown model ...' with up to three close names and the known ones."""
    names = [e.name for e in entries]
    by_key = {_name_key(n): n for n in reversed(names)}
    wanted = _name_key(spec)
    close = [n for n in names if _name_key(n) == wanted]
    if not close:   # a name differing only in case or separators is the one meant; else similar ones
        close = [n for n in names if wanted in _name_key(n)]
        close += [by_key[m] for m in difflib.get_close_matches(wanted, list(by_key), n=3, cutoff=0.6)
                  if by_key[m] not in close]
    hint = f"; did you mean {' or '.join(repr(n) for n in close[:3])}?" if close else ""
    if runs_dir is not None:
        hint += _unfinished_run_hint(Path(runs_dir) / spec)
    known = ", ".join(names) or "none installed"
    return f"unknown model '{spec}'{hint} (known models: {known})"


def _name_key(name: str) -> str:
    """A name as compared for suggestions: case, '-', '.' and spaces do not count."""
    return re.sub(r"[-. ]", "_", name.lower())


def read_card(entry: ModelEntry) -> ModelCard:
    """The model's card: ``<name>.json`` beside the weights, else the copy in the file's header."""
    if entry.card_path.is_file():
        try:
            data = json.loads(entry.card_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{entry.card_path}: unreadable model card ({exc})") from None
        except RecursionError:   # JSON nested thousands deep: no card is, and parsing it overflows
            raise ModelError(f"{entry.card_path}: unreadable model card (nested too deep)") from None
        return ModelCard.from_dict(data, str(entry.card_path))
    meta = _open_weights(entry.weights, lambda f: f.metadata(), framework="numpy") or {}
    if CARD_KEY not in meta:
        raise ModelError(f"{entry.weights}: not a vidstyle model: no model card ({entry.card_path.name} "
                         "is missing and the file carries none), so the network it belongs to is unknown")
    try:
        data = json.loads(meta[CARD_KEY])
    except json.JSONDecodeError as exc:
        raise ModelError(f"{entry.weights}: the model card in its header is not JSON ({exc})") from None
    except RecursionError:
        raise ModelError(f"{entry.weights}: the model card in its header is nested too deep") from None
    return ModelCard.from_dict(data, str(entry.weights))


def _open_weights(path: Path, read, framework: str = "pt"):
    """Apply ``read`` to the safetensors file opened for ``framework`` ("numpy" needs no torch); any
    failure to parse it becomes ModelError."""
    try:
        with safe_open(str(path), framework=framework, device="cpu") as f:
            return read(f)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: not a readable .safetensors model file ({exc})") from None


def net_config_from_shapes(shapes: Mapping[str, Sequence[int]]) -> dict[str, Any] | None:
    """The ``channels``, ``res_blocks`` and ``end_kernel`` (not for lite) that tensors of these
    shapes were made for, read from the parameter names of :mod:`vidstyle.models.net`'s and
    :mod:`vidstyle.models.netlite`'s networks; None if the names are not theirs (tests/test_zoo.py and
    tests/test_netlite.py check this against ``build_net``'s config)."""
    # huang and johnson: encoder.i = (pad, conv, ...); lite (vidstyle.models.netlite): encoder.i = (conv, ...)
    conv_index = 1 if "encoder.0.1.weight" in shapes else 0
    try:
        first, second, third = (tuple(shapes[f"encoder.{i}.{conv_index}.weight"]) for i in range(3))
    except KeyError:
        return None
    if len(first) != 4 or len(second) != 4 or len(third) != 4:
        return None
    blocks = {m.group(1) for key in shapes if (m := _RESIDUAL_RE.match(key))}
    held = {"channels": [first[0], second[0], third[0]], "res_blocks": len(blocks)}
    if conv_index == 1:
        held["end_kernel"] = first[-1]
    return held


_RESIDUAL_RE = re.compile(r"^residuals\.(\d+)\.")


def check_card_fits_shapes(card: ModelCard, shapes: Mapping[str, Sequence[int]], where: str) -> None:
    """ModelError unless the card's network is the one the tensors' shapes describe.

    Runs before anything is built, so a card asking for 200000 residual blocks or 200000 channels
    costs nothing: the file's own shapes bound what is built.
    """
    from vidstyle.models.net import NET_DEFAULTS

    if card.net_name not in NET_DEFAULTS:
        raise ModelError(f"{where}: unknown network {card.net_name!r} in the model card; "
                         f"choose from {', '.join(sorted(NET_DEFAULTS))}")
    held = net_config_from_shapes(shapes)
    if held is None:
        example = next(iter(shapes), "none")
        raise ModelError(f"{where}: not a vidstyle model: tensor encoder.0.1.weight is missing "
                         f"(it holds {len(shapes)} tensors, e.g. {example})")
    asked = {**NET_DEFAULTS[card.net_name], **card.net_kwargs}
    for key, value in held.items():
        if _normalized(asked.get(key)) != value:
            raise ModelError(f"{where}: the model card asks for {key}={asked.get(key)!r}, but the "
                             f"tensors' shapes are those of {key}={value!r}")


def _normalized(value: Any) -> Any:
    """Card values as JSON gives them: tuples become lists (a card written from ``net.config``)."""
    return list(value) if isinstance(value, tuple) else value


def build_from_card(card: ModelCard, where: str = "") -> torch.nn.Module:
    """The (untrained) network the card describes; ModelError if the card's net cannot be built."""
    from vidstyle.models.net import build_net

    try:
        return build_net(card.net_name, **card.net_kwargs)
    except ModelError as exc:
        raise ModelError(f"{where or card.name}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where or card.name}: cannot build its network from the card: {exc}") from None


def weights_problem(tensors: Mapping[str, torch.Tensor], dtype: torch.dtype) -> str | None:
    """Why ``tensors`` cannot be stored as ``dtype`` (NaN / infinite values, or magnitudes beyond
    the type's range, e.g. 65504 for float16), or None if they can."""
    import torch

    limit = torch.finfo(dtype).max if dtype.is_floating_point else math.inf
    for key, t in tensors.items():
        if not t.is_floating_point() or t.numel() == 0:
            continue
        if not bool(torch.isfinite(t).all()):
            return f"tensor {key} holds NaN or infinite values"
        peak = float(t.detach().abs().max())
        if peak > limit:
            return (f"tensor {key} reaches {peak:.3g}, beyond the range of "
                    f"{str(dtype).removeprefix('torch.')} ({limit:g})")
    return None


def check_state_dict(tensors: Mapping[str, torch.Tensor], net: torch.nn.Module, where: str) -> None:
    """Raise ModelError unless ``tensors`` fit ``net`` exactly: same names, shapes, finite floats."""
    import torch

    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        detail = "; ".join(part for part in (
            f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "") if part)
        raise ModelError(f"{where}: does not hold the weights of its network: {detail}")
    for key, ref in expected.items():
        t = tensors[key]
        if tuple(t.shape) != tuple(ref.shape):
            raise ModelError(f"{where}: tensor {key} has shape {tuple(t.shape)}, the network needs "
                             f"{tuple(ref.shape)}")
        if ref.is_floating_point() and not (t.is_floating_point() and bool(torch.isfinite(t).all())):
            raise ModelError(f"{where}: tensor {key} is not finite floating point (corrupt file?)")


def load_model(spec: str | os.PathLike | ModelEntry, **folders_kw) -> LoadedModel:
    """Find, check and load a model for inference. ModelError on anything wrong with it."""
    entry = spec if isinstance(spec, ModelEntry) else find_model(spec, **folders_kw)
    card = read_card(entry)
    shapes = _open_weights(entry.weights, lambda f: {k: f.get_slice(k).get_shape() for k in f.keys()})
    check_card_fits_shapes(card, shapes, str(entry.weights))
    net = build_from_card(card, str(entry.weights))
    tensors = _open_weights(entry.weights, lambda f: {k: f.get_tensor(k) for k in f.keys()})
    check_state_dict(tensors, net, str(entry.weights))
    net.load_state_dict({k: t.float() if t.is_floating_point() else t for k, t in tensors.items()})
    net.eval().requires_grad_(False)
    return LoadedModel(net, card, entry)


def save_model(net: torch.nn.Module, path: str | os.PathLike, card: ModelCard,
               dtype: torch.dtype | None = None) -> Path:
    """Write ``net``'s weights to ``path`` (``.safetensors``) and the card beside it (``.json``).

    Both appear atomically, the card first, so a listed model always has its card. Floating point
    tensors are stored as ``dtype`` (default float32; float16 halves the file). ModelError if the
    weights do not fit the network the card names. Returns the weights path.
    """
    import torch
    from safetensors.torch import save_file

    dtype = torch.float32 if dtype is None else dtype
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ModelError(f"{path}: model files must end in {SUFFIX}")
    if not _NAME_RE.match(card.name):
        raise ModelError(f"model name '{card.name}' may hold only letters, digits, '_', '-' and '.'")
    problem = weights_problem(net.state_dict(), dtype)
    if problem:
        raise ModelError(f"{path}: not written: {problem}")
    tensors = {k: (t.to(dtype) if t.is_floating_point() else t).detach().cpu().contiguous()
               for k, t in net.state_dict().items()}
    # Refuse now what load_model would refuse later (a compiled or DDP-wrapped module's prefixed
    # names, a card describing another network): the mistake is cheapest to fix at save time.
    check_state_dict(tensors, build_from_card(card, str(path)), str(path))
    text = json.dumps(card.to_dict(), indent=2, sort_keys=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The weights are written first, under their temporary name, and renamed after the card: a
        # failed write leaves neither, and a listed model always has its card.
        with atomic_output(path) as tmp:
            save_file(tensors, str(tmp), metadata={CARD_KEY: text})
            os.chmod(tmp, 0o644)  # safetensors creates it owner-only; a shipped model must be readable
            with atomic_output(path.with_suffix(".json")) as card_tmp:
                card_tmp.write_text(text + "\n", encoding="utf-8")
    except (OSError, SafetensorError) as exc:   # a full disk, a read-only folder
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _io_reason(exc)
        raise ModelError(f"cannot write the model {path}: {reason}") from None
    return path


def _io_reason(exc: BaseException) -> str:
    """The system's words inside a safetensors error (``Os { code: 28, ... message: "No space left
    on device" }``), or its first line."""
    found = re.search(r'message: "([^"]+)"', str(exc))
    return found[1] if found else (str(exc).splitlines() or [type(exc).__name__])[0]
