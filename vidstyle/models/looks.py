"""A style name is a look with up to two networks: the full model, and a fast one distilled from it;
and the listings of ``vidstyle models`` (styles, model files, JSON records).

``--model starwars_blue`` names the look; :func:`choose` picks the network that runs it:

- ``quality="full"``: the full model (the teacher, when the name given is a fast network's);
- ``quality="fast"``: the fast network distilled from it, if there is one (else the full model);
  of several, the first whose card keeps the look (:func:`fast_network`);
- ``quality="auto"`` (the default): on a GPU the full model; on a CPU the fast network when its card
  shows it keeps the full model's look (:func:`keeps_the_look`), else the full model. A fast network
  named directly (``--model starwars_blue_lite``) runs as named, and its outputs carry that name.

A fast network's card says whose look it carries (``trained.distilled.teacher``) and how close it
comes on held-out clips (``metrics.fast_check``, written by ``benchmarks/heldout_targets.py``). No
torch here: cards are JSON.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vidstyle.errors import ConfigError, ModelError
from vidstyle.models.zoo import ModelCard, ModelEntry, find_model, list_models, read_card

QUALITIES = ("auto", "fast", "full")
# A fast network keeps the look when, on the held-out clips, its style loss is within 10% of the
# full model's and its warping error no more than 10% above the full model's.
STYLE_MARGIN = 1.10
EWARP_MARGIN = 1.10


@dataclass(frozen=True)
class Choice:
    """The network that runs a look: its ``entry`` and ``card``; ``look``: the name outputs carry (the
    style asked for); ``fast``: whether it is the fast network; ``why``: a few words for a notice."""

    entry: ModelEntry
    card: ModelCard
    look: str
    fast: bool
    why: str


def teacher_of(card: ModelCard) -> str | None:
    """The full model whose look a fast network was distilled from, or None for a full model."""
    distilled = card.trained.get("distilled")
    teacher = distilled.get("teacher") if isinstance(distilled, dict) else None
    return teacher if isinstance(teacher, str) and teacher else None


def keeps_the_look(card: ModelCard) -> bool:
    """Whether a fast network's held-out check (``metrics.fast_check``) is within the margins."""
    check = card.metrics.get("fast_check")
    if not isinstance(check, dict):
        return False
    try:
        style, style_full = float(check["style_ratio"]), float(check["style_ratio_full"])
        ewarp, ewarp_full = float(check["ewarp_ratio"]), float(check["ewarp_ratio_full"])
    except (KeyError, TypeError, ValueError):
        return False
    return style <= STYLE_MARGIN * style_full and ewarp <= EWARP_MARGIN * ewarp_full


def _cards(**folders_kw: Any) -> list[tuple[ModelEntry, ModelCard]]:
    """Every named model with a readable card, in lookup order (a broken card hides nothing else)."""
    found = []
    for entry in list_models(**folders_kw):
        try:
            found.append((entry, read_card(entry)))
        except ModelError:
            continue
    return found


def fast_network(look: str, **folders_kw: Any) -> tuple[ModelEntry, ModelCard] | None:
    """The fast network that runs ``look``: the first, in lookup order, of those distilled from it
    whose card keeps the look, else the first of them; None when there is none.

    A student distilled from a shipped look and not (yet) checked, in the user's runs, so neither
    takes the shipped fast network's place nor sends ``--model LOOK`` to the full network.
    """
    students = [(entry, card) for entry, card in _cards(**folders_kw)
                if teacher_of(card) == look and entry.name != look]
    keeping = [(entry, card) for entry, card in students if keeps_the_look(card)]
    return (keeping or students or [None])[0]


def choose(spec: str | os.PathLike, quality: str = "auto", device_type: str = "cpu",
           **folders_kw: Any) -> Choice:
    """The network that runs ``--model spec`` at ``quality`` on a ``device_type`` ("cpu" or "cuda").

    A model file given by path runs as it is. ModelError for an unknown model, ConfigError for an
    unknown quality.
    """
    if quality not in QUALITIES:
        raise ConfigError(f"unknown quality '{quality}' (use {', '.join(QUALITIES)})")
    entry = find_model(spec, **folders_kw)
    card = read_card(entry)
    teacher = teacher_of(card)
    if entry.source == "path":
        return Choice(entry, card, teacher or entry.name, teacher is not None, "a model file")
    if teacher is not None:     # a fast network named directly: outputs keep the name given
        if quality != "full":
            return Choice(entry, card, entry.name, True, "named")
        try:
            full = find_model(teacher, **folders_kw)
        except ModelError:
            return Choice(entry, card, entry.name, True, f"its full model {teacher} is not installed")
        return Choice(full, read_card(full), teacher, False, "--quality full")
    fast = fast_network(entry.name, **folders_kw) if quality != "full" else None
    if fast is None:
        why = "--quality full" if quality == "full" else "no fast network"
        return Choice(entry, card, entry.name, False, why)
    if quality == "fast":
        return Choice(*fast, entry.name, True, "--quality fast")
    if device_type != "cpu":
        return Choice(entry, card, entry.name, False, "a GPU runs the full network")
    if keeps_the_look(fast[1]):
        return Choice(*fast, entry.name, True, "on a CPU, the fast network keeps the look")
    return Choice(entry, card, entry.name, False, "on a CPU, the fast network does not yet keep the look")


def looks(**folders_kw: Any) -> list[dict[str, Any]]:
    """One record per look for ``vidstyle models``: ``name`` (the full model), ``networks`` (each
    ``{"model", "net", "role": "full"|"fast", "keeps_look"}``), ``style_image``, ``description``
    (its first sentence), ``source``. A fast network whose full model is not installed is a look
    of its own. A model whose card cannot be read is a look without networks, its description the
    reason, so one bad file hides nothing and is seen."""
    cards, records = [], {}
    for entry in list_models(**folders_kw):
        try:
            cards.append((entry, read_card(entry)))
        except ModelError as exc:
            records[entry.name] = {"name": entry.name, "networks": [], "style_image": "",
                                   "description": f"(unusable: {first_sentence(str(exc), 70)})",
                                   "source": entry.source}
    names = {entry.name for entry, _ in cards}
    for entry, card in cards:
        teacher = teacher_of(card)
        look = teacher if teacher in names else entry.name
        record = records.setdefault(look, {"name": look, "networks": [], "style_image": card.style_image,
                                           "description": "", "source": entry.source})
        role = "fast" if teacher else "full"
        record["networks"].append({"model": entry.name, "net": card.net_name, "role": role,
                                   "keeps_look": keeps_the_look(card) if teacher else None})
        if role == "full" or not record["description"]:
            record["description"] = first_sentence(card.description)
            record["source"] = entry.source
    for record in records.values():
        record["networks"].sort(key=lambda n: n["role"] != "full")
    return [records[name] for name in sorted(records)]


def first_sentence(text: str, limit: int = 90) -> str:
    """The first sentence of ``text``, cut to ``limit`` characters."""
    sentence = text.split(". ")[0].strip().rstrip(".")
    return sentence if len(sentence) <= limit else sentence[:limit - 1].rstrip() + "…"


def model_records(entries: Iterable[ModelEntry]) -> list[dict[str, Any]]:
    """One JSON-ready record per model (``vidstyle models --json``): ``name``, ``source``, ``path``,
    the card's fields (``net``, ``style_image``, ``description``, ``trained``, ``metrics``) and
    ``error``: null, or why the model cannot be used (then the card fields are absent)."""
    records = []
    for entry in entries:
        record: dict[str, Any] = {"name": entry.name, "source": entry.source, "path": str(entry.weights)}
        try:
            card = read_card(entry).to_dict()
            record.update({k: v for k, v in card.items() if k != "name"}, error=None)
        except ModelError as exc:
            record["error"] = str(exc)
        records.append(record)
    return records


def describe(entries: Iterable[ModelEntry]) -> list[dict[str, str]]:
    """One row per model for ``vidstyle models``: name, source, net, style image, description.

    A model whose card cannot be read is listed with the reason instead of hiding it.
    """
    rows = []
    for record in model_records(entries):
        if record["error"]:
            row = {"net": "?", "style_image": "-", "description": f"(unusable: {record['error']})"}
        else:
            row = {"net": str(record["net"]["name"]), "style_image": record["style_image"] or "-",
                   "description": record["description"] or "-"}
        rows.append({"name": record["name"], "source": record["source"], "path": record["path"], **row})
    return rows
