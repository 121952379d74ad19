"""Choosing and building the engine a job runs on: PyTorch (eager or compiled) or onnxruntime.

:class:`StylizerPool` is the one place that decides, per job size, which engine runs a model; the
``infer`` command, folder batches, ``vidstyle serve`` and :func:`vidstyle.infer.job.stylize_video` on
a bare network all get their engines from it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from vidstyle.errors import ConfigError
from vidstyle.infer.engine import FrameEngine
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.infer.onnxengine import OnnxStylizer
from vidstyle.models.backends import CacheUnwritable, choose_backend, device_type
from vidstyle.models.lazymodel import LazyModel, export_notice

if TYPE_CHECKING:
    from torch import nn


def engine_backend(config: EngineConfig, work_pixels: int | None, exportable: bool = True,
                   network: str | None = None) -> str:
    """The backend ``config`` runs a job of ``work_pixels`` on (the rule:
    :func:`vidstyle.models.backends.choose_backend`), for its device, decided without torch where
    :func:`vidstyle.models.backends.device_type` can; ConfigError for ``--compile`` with onnx."""
    backend = choose_backend(config.backend, device_type(config.device), work_pixels,
                             exportable=exportable, network=network)
    if backend == "onnx" and config.compile:
        raise ConfigError("--compile is for the torch backend; the onnx backend runs onnxruntime")
    return backend


class StylizerPool:
    """The engines of one run, one per (compile, backend) decision, sharing the model: the one place
    where a job's backend is chosen (:func:`engine_backend` for its size).

    ``model`` is a :class:`vidstyle.models.lazymodel.LazyModel` or a torch network. Where the onnx backend
    is chosen, the engine is an :class:`vidstyle.infer.onnxengine.OnnxStylizer` on the model's cached
    export, and torch is not imported (:mod:`vidstyle.models.lazymodel`). ``notify`` is told before a
    compile or a first ONNX export is due (torch compiles per frame shape), so a user does not
    watch a progress bar sit at 0% while it happens.
    """

    def __init__(self, model: LazyModel | nn.Module, engine: EngineConfig,
                 notify: Callable[[str], None] | None = None):
        self.model = model if isinstance(model, LazyModel) else LazyModel(net=model)
        self.engine, self.notify = engine, notify
        self._stylizers: dict[tuple[bool, str], FrameEngine] = {}
        self._compiled_sizes: set[tuple[int, int]] = set()
        self._cache_unwritable = False

    def get(self, work_pixels: int, size: tuple[int, int] | None = None) -> FrameEngine:
        """The engine for a job of ``work_pixels`` (frames x pixels) at ``size`` (width, height;
        None when not known yet, as for a photo before it is read)."""
        backend = engine_backend(self.engine, work_pixels, self.model.exportable, self.model.network)
        if backend == "onnx" and not self._cache_unwritable:
            try:
                return self._onnx_engine()
            except CacheUnwritable as exc:
                if self.engine.backend == "onnx":   # asked for by name: nothing else will do
                    raise
                # onnxruntime was only the faster choice: a full cache disk must not stop the job.
                self._cache_unwritable = True
                warnings.warn(f"{exc}; running on torch instead", stacklevel=2)
        from vidstyle.infer.stylize import Stylizer, plan

        decided = plan(replace(self.engine, backend="torch"), work_pixels)
        key = (decided.compile, "torch")
        if key not in self._stylizers:
            self._stylizers[key] = Stylizer(self.model.net, replace(self.engine, compile=decided.compile,
                                                                    backend="torch"))
        stylizer = self._stylizers[key]
        if stylizer.compiled and size not in self._compiled_sizes:
            self._compiled_sizes.add(size)
            if self.notify is not None:
                where = "GPU" if stylizer.plan.device_type == "cuda" else "CPU"
                at = f" at {size[0]}x{size[1]}" if size else ""
                self.notify(f"compiling the network for this {where}{at}, once, ~30 s "
                            f"(later runs reuse it)")
        return stylizer

    def _onnx_engine(self) -> FrameEngine:
        key = (False, "onnx")
        if key not in self._stylizers:
            if self.notify is not None and not self.model.onnx_cached():
                self.notify(export_notice(self.model.name))
            self._stylizers[key] = OnnxStylizer(self.model.onnx_file(), replace(self.engine, backend="onnx"))
        return self._stylizers[key]
