"""Atomic file output: a finished file appears under its final name only when it is complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


def temp_path_for(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """The temporary name used while ``path`` is being written (same folder, so rename is atomic).

    The suffix goes before the extension (``clip.tmp.mp4``) so that tools choosing a format by
    extension (PyAV, OpenCV) still see the right one.
    """
    path = Path(path)
    return path.with_name(f"{path.stem}{suffix}{path.suffix}") if path.suffix else path.with_name(path.name + suffix)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, tmp: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` on success, delete it on any failure.

    Exceptions and Ctrl-C remove the temporary file; a process killed outright leaves only the
    temporary name behind, never a partial file under the final one. ``tmp`` defaults to
    ``temp_path_for(path)``.
    """
    final = Path(path)
    tmp = Path(tmp) if tmp is not None else temp_path_for(final)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
