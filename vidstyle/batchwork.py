"""What every batch command shares: walking folders of inputs, splitting them into shards, and the
summary of a run. Used by ``vidstyle flows precompute`` and ``vidstyle infer`` alike.

Shards: ``--shard I/N`` takes the inputs whose stable id hashes (crc32) to I modulo N, so N machines
given the same sources share the work with no coordination.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vidstyle.errors import ConfigError


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8): this job takes shard 2 of 8 (shards are numbered from 0)."""
    if text is None:
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ConfigError(f"shard must be I/N with 0 <= I < N, e.g. 0/4, not {text!r}")
    return int(match[1]), int(match[2])


def in_shard(item_id: str, shard: tuple[int, int]) -> bool:
    """Stable assignment of an input to one of N shards (crc32 of the id: the same on every machine).

    Ids come from file names, which need not be valid UTF-8: such bytes are hashed as they are.
    """
    index, count = shard
    return zlib.crc32(item_id.encode("utf-8", "surrogateescape")) % count == index


def walk(folder: Path, descend: Callable[[Path], bool]) -> Iterator[Path]:
    """The entries under ``folder``, depth first and sorted by name, hidden names skipped.

    A sub-folder for which ``descend`` is true is entered, not yielded; every other entry is yielded.
    A folder already entered (a link back up the tree, or two links to one folder) is not entered
    again, so a symlink loop ends instead of repeating the same inputs ever deeper.
    """
    entered: set[tuple[int, int]] = set()

    def visit(current: Path) -> Iterator[Path]:
        stat = current.stat()
        if (stat.st_dev, stat.st_ino) in entered:
            return
        entered.add((stat.st_dev, stat.st_ino))
        for entry in sorted(current.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir() and descend(entry):
                yield from visit(entry)
            else:
                yield entry

    yield from visit(folder)


@dataclass
class BatchSummary:
    """The outcome of a batch run: one result per input (each with a ``status`` and ``seconds``), the
    files met but not taken as inputs, and the run's wall time in seconds."""

    results: list = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def to_dict(self) -> dict:
        return {"done": self.count("ok"), "failed": self.count("failed"), "ignored": self.ignored,
                "seconds": round(self.seconds, 3),
                "results": [{**asdict(r), "seconds": round(r.seconds, 3)} for r in self.results]}

