"""A model for inference whose network is built only when a job needs PyTorch.

    model = open_model("starwars_blue", backend="auto")
    model.onnx_file()        # the cached ONNX export: no torch when it is there already
    model.net                # the torch network, loaded (and checked) on first use

Finding a model and reading its card need no torch (:mod:`vidstyle.models.zoo`), and its export is cached
under a key of the model file's bytes (:func:`vidstyle.models.backends.model_file_key`), so a job on the
onnx backend whose export is cached never imports torch. Without a cached export :func:`open_model`
loads the network at once, so a bad model file is refused before any input is read: in a child process
that also writes the export when the job will run on onnxruntime anyway (torch never enters the job's
process), in this one otherwise. An export is only ever written after that load succeeded, so a
cached one vouches for the file of its key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidstyle.models.backends import (
    ONNX_MAX_PIXELS,
    CacheUnwritable,
    cached_export,
    choose_backend,
    device_type,
    export_path,
    model_file_key,
)
from vidstyle.models.looks import choose
from vidstyle.models.zoo import ModelCard, ModelEntry

if TYPE_CHECKING:
    from torch import nn


class LazyModel:
    """A model file (``entry`` and ``card``), or a network given as is (``net``): its network on
    demand and its ONNX export from the cache, made once."""

    def __init__(self, entry: ModelEntry | None = None, card: ModelCard | None = None,
                 net: nn.Module | None = None, look: str | None = None):
        if net is None and (entry is None or card is None):
            raise ValueError("LazyModel needs a model file's entry and card, or a network")
        self.entry, self.card, self._net, self._look = entry, card, net, look
        self._key: str | None = None

    @property
    def look(self) -> str:
        """The style name the user asked for (outputs are named by it), which may be run by a fast
        network of another name (:mod:`vidstyle.models.looks`)."""
        return self._look or self.name

    @property
    def name(self) -> str:
        if self.entry is not None:
            return self.entry.name
        return getattr(self._net, "config", {}).get("name", "net")

    @property
    def net(self) -> nn.Module:
        """The network, eval mode, fp32 on the CPU; loaded from the file on first use (torch)."""
        if self._net is None:
            from vidstyle.models.zoo import load_model

            self._net = load_model(self.entry).net
        return self._net

    @property
    def network(self) -> str | None:
        """The network's name ("huang", "lite", ...): from the card, without torch, for a model file."""
        if self.card is not None:
            return self.card.net_name
        return getattr(self._net, "config", {}).get("name")

    @property
    def exportable(self) -> bool:
        """Whether the onnx backend can run it: every model file holds a vidstyle network."""
        if self._net is None:
            return True
        from vidstyle.models.net import is_stylizing_net

        return is_stylizing_net(self._net)

    def _export_path(self, folder: str | os.PathLike | None) -> Path:
        if self._key is None:
            self._key = model_file_key(self.entry.weights, self.card.net)
        return export_path(self.name, self._key, folder)

    def onnx_cached(self, folder: str | os.PathLike | None = None) -> bool:
        """Whether the model file's export is in the cache (always False for a bare network)."""
        return self.entry is not None and self._export_path(folder).is_file()

    def onnx_file(self, folder: str | os.PathLike | None = None) -> Path:
        """The ONNX export in the cache (default ``$VIDSTYLE_CACHE/onnx``), exported on first use."""
        if self.entry is None:
            return cached_export(self.net, folder)
        path = self._export_path(folder)
        if path.is_file():
            return path
        if self._net is None:   # not loaded here: load and export in a child, so torch stays out
            from vidstyle.models.exportchild import export_in_child

            return export_in_child(self.entry.weights, self.name, self._key, path.parent)
        return cached_export(self.net, path.parent, name=self.name, key=self._key,
                             card=self.card.to_dict())


def open_model(spec: str | os.PathLike, backend: str = "auto", quality: str = "auto",
               device: str | None = "auto", notify: Callable[[str], None] | None = None,
               **folders_kw: Any) -> LazyModel:
    """Find a model (``--model``: a style name or a ``.safetensors`` path) for a job on ``backend``
    and ``device``, and the network that runs it at ``quality`` (:func:`vidstyle.models.looks.choose`).

    Anything wrong with the file is a ModelError here, before any input is read. If the export is
    cached, nothing is loaded. If the job will run on onnxruntime whatever its length (``--backend
    onnx``, or auto on the CPU for a network in ONNX_ALWAYS), the file is loaded, checked and
    exported now in a child process (:mod:`vidstyle.models.exportchild`; ``notify`` is told first),
    so this process never loads torch. Otherwise the network is loaded here (torch).
    """
    dtype = device_type(device)
    choice = choose(spec, quality, dtype, **folders_kw)
    model = LazyModel(choice.entry, choice.card, look=choice.look)
    if backend != "torch" and model.onnx_cached():
        return model
    # onnxruntime whatever the job's length: the auto rule's answer for a job of the longest kind.
    if choose_backend(backend, dtype, ONNX_MAX_PIXELS, network=model.network) == "onnx":
        if notify is not None:
            notify(export_notice(model.name))
        try:
            model.onnx_file()
            return model
        except CacheUnwritable:
            if backend == "onnx":
                raise
            # auto: the job falls back to torch (StylizerPool says so); the file is checked here.
    model.net  # noqa: B018 (loads and checks the file)
    return model


def export_notice(name: str) -> str:
    """What a user is told while a model's first export runs."""
    return f"exporting {name} for onnxruntime, the fastest CPU backend, once (later runs reuse it)"
