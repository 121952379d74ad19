"""The files of a training run and their formats: folder, config.json, loss log, checkpoint.

A run lives in ``runs/NAME/`` (written by rank 0 only)::

    config.json          the TrainConfig (written once the style image, flows and photos are checked)
    losses.csv           step, the weighted total and each term (means over --log-every steps)
    checkpoint.pt        model, optimizer, step, RNG states and config; written atomically
    previews/step_N.png  fixed pair: input t | output t | output t+1
    NAME.safetensors     final weights (fp16) + NAME.json model card (vidstyle.models.zoo format)
    .lock                held by the process running the run (see :meth:`RunFiles.hold`)

``vidstyle distill`` keeps the same files (its own columns in losses.csv, no previews). A checkpoint
is loaded without running code (tensors, numbers and strings only), and resuming needs nothing but
the file.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vidstyle.errors import ConfigError
from vidstyle.fsutil import atomic_output, hold_lock
from vidstyle.training.losses import TERMS
from vidstyle.training.trainconfig import TrainConfig

CHECKPOINT_FORMAT = "vidstyle-train-checkpoint/1"
TRAIN_TERMS = (*TERMS, "compound", "feature_temporal", "shift")
CSV_FIELDS = ("step", "total", *TRAIN_TERMS, "lr", "seconds")
# A write that failed for want of room (or a file-size limit, or a read-only disk): said in one line.
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


class RunStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a run; the message says how to go on (the CLI prints it, exit 130)."""


class RunFiles:
    """The files of ``runs/NAME/`` (see the module docstring). ``fields``: the columns of losses.csv;
    ``previews``: whether the run writes preview pictures."""

    def __init__(self, run_dir: Path, fields: Sequence[str] = CSV_FIELDS, previews: bool = True):
        self.dir = Path(run_dir)
        self.fields = tuple(fields)
        self.config = self.dir / "config.json"
        self.losses = self.dir / "losses.csv"
        self.checkpoint = self.dir / "checkpoint.pt"
        self.previews = self.dir / "previews"
        self.keeps_previews = previews
        self._prepared = False   # whether this process started writing the run (prepare)

    @contextlib.contextmanager
    def hold(self, resume: bool) -> Iterator[None]:
        """Run the ``with`` block as the one process working in this run folder, and answer for how
        it ends.

        ConfigError at once ("busy") while another process holds the folder's ``.lock``
        (:func:`vidstyle.fsutil.hold_lock`; the kernel drops the lock of a killed process). A write
        that fails for want of room becomes one line (ConfigError), and a new run (not ``resume``)
        that ends before its first checkpoint leaves nothing behind: it could not be resumed anyway.
        Ctrl-C (and SIGTERM, which the CLI turns into it) becomes :class:`RunStopped`, saying how to
        go on.
        """
        leave_nothing = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot write the run folder {self.dir}: {exc.strerror or exc}") from None
        try:
            with hold_lock(self.dir / ".lock") as mine:
                if not mine:
                    raise ConfigError(f"run '{self.dir.name}' is busy: another process is running it in "
                                      f"{self.dir}; wait for it to end, or give another --name")
                try:
                    yield
                except BaseException as exc:
                    unresumable = not resume and not self.checkpoint.exists()
                    if unresumable:
                        leave_nothing = True
                        if self._prepared:   # what this run wrote; never a model it did not write
                            for path in (self.config, self.losses, *self.previews.glob("step_*.png")):
                                path.unlink(missing_ok=True)
                    if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunStopped):
                        raise RunStopped(self._stopped_words(unresumable)) from None
                    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
                        raise ConfigError(f"cannot write in {self.dir}: {exc.strerror}"
                                          f"{'' if exc.errno == errno.EROFS else '; disk full?'}") from None
                    raise
        finally:
            if leave_nothing:
                self.remove_if_empty()

    def _stopped_words(self, discarded: bool) -> str:
        if discarded:
            return (f"stopped before the first checkpoint of run '{self.dir.name}', so nothing was kept; "
                    "run the same command again to start it")
        return f"stopped; resume with --resume (run '{self.dir.name}' goes on from its last checkpoint)"

    def check_start(self, resume: bool, overwrite: bool) -> None:
        """Refuse to start over an existing run by accident, or to resume one with no checkpoint.
        Touches nothing."""
        if resume and overwrite:
            raise ConfigError("--resume continues a run and --overwrite starts it again: give one")
        if resume and not self.checkpoint.is_file():
            raise ConfigError(f"nothing to resume: run '{self.dir.name}' stopped before its first "
                              "checkpoint; start it again with --overwrite")
        if not resume and self.checkpoint.exists() and not overwrite:
            raise ConfigError(f"{self.dir} already holds a run; use --resume to continue it, "
                              "--overwrite to start it again, or another --name")

    def prepare(self, config: TrainConfig, resume: bool, overwrite: bool) -> None:
        """Create the folder and write config.json, once every input has been checked.

        ``overwrite`` first removes the files of the run being replaced (checkpoint, log, previews,
        model), so none of them is mistaken for the new run's. A folder this call creates is removed
        again if it cannot be written.
        """
        self.check_start(resume, overwrite)
        created = not self.dir.exists()
        try:
            if overwrite and not resume:
                self._remove_run_files(config.name)
            (self.previews if self.keeps_previews else self.dir).mkdir(parents=True, exist_ok=True)
            self._prepared = True
            with atomic_output(self.config) as tmp:
                tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            if created:
                self.remove_if_empty()
            raise ConfigError(f"cannot write the run folder {self.dir}: {exc.strerror or exc}") from None

    def _remove_run_files(self, name: str) -> None:
        model = self.dir / f"{name}.safetensors"
        for path in (self.checkpoint, self.losses, model, model.with_suffix(".json"),
                     *self.previews.glob("step_*.png")):
            path.unlink(missing_ok=True)

    def remove_if_empty(self) -> None:
        """Remove the previews folder and the run folder if they hold nothing (a run that never began)."""
        for folder in (self.previews, self.dir):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def start_log(self, start_step: int) -> None:
        """Keep the logged rows up to ``start_step`` (a resumed run rewrites what followed)."""
        rows = []
        if start_step > 0 and self.losses.is_file():
            with open(self.losses, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        with atomic_output(self.losses) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(rows)

    def log(self, row: dict[str, float]) -> None:
        with open(self.losses, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.fields).writerow(row)

    def read_log(self) -> list[dict[str, float]]:
        """The logged rows; a column a row lacks (logs of older versions) is left out of it."""
        with open(self.losses, newline="", encoding="utf-8") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def save_checkpoint(path: Path, net: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    config: Any, seconds: float,
                    generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Everything a resume needs, written atomically (a crash mid-write keeps the previous file).

    ``config``: the run's settings (a dataclass with ``to_dict``); ``generators``: the run's own
    random generators besides torch's global ones, by name (see :func:`restore_generators`).
    ConfigError, one line, when the file cannot be written (a full disk)."""
    state = {
        "format": CHECKPOINT_FORMAT, "step": step, "seconds": seconds, "config": config.to_dict(),
        "model": net.state_dict(), "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "generators": {name: g.get_state() for name, g in (generators or {}).items()}},
    }
    buffer = io.BytesIO()   # serialized first, so that a failed write is an OSError with its reason
    torch.save(state, buffer)
    try:
        with atomic_output(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())
    except OSError as exc:
        full = exc.errno in _STORAGE_ERRNOS and exc.errno != errno.EROFS
        raise ConfigError(f"cannot write the checkpoint {path}: {exc.strerror or exc}"
                          f"{'; disk full?' if full else ''}") from None


def restore_generators(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Put ``generators`` back where the checkpoint ``state`` saved them (by name); ConfigError if the
    checkpoint lacks one (it was written by a version that re-seeded it instead)."""
    saved = state["rng"].get("generators", {})
    for name, generator in generators.items():
        if name not in saved:
            raise ConfigError(f"the checkpoint holds no state of the {name} generator (an older version "
                              "wrote it); resuming would not be exact: start again with --overwrite")
        generator.set_state(saved[name])


_CHECKPOINT_KEYS = ("format", "step", "seconds", "config", "model", "optimizer", "rng")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded without running code (tensors, numbers and strings only).
    ConfigError, one line, for a missing, damaged, foreign or code-carrying file."""
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise ConfigError(f"{path}: refused: it holds Python objects beyond tensors and numbers, so "
                              "vidstyle did not write it, and loading it could run code") from None
        raise ConfigError(f"{path}: not a readable checkpoint (damaged, or another program's file)") from None
    except Exception as exc:  # torch raises several unrelated types for damaged files
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path}: unreadable checkpoint ({first_line})") from None
    if (not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT
            or any(key not in state for key in _CHECKPOINT_KEYS)):
        raise ConfigError(f"{path}: not a vidstyle training checkpoint")
    return state
