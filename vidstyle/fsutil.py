"""Atomic file output: a finished file appears under its final name only when it is complete.

Temporary files get a fresh name in the target's folder, created exclusively (``O_EXCL``), so two
jobs writing the same output never share one, and no existing file is ever truncated or deleted to
make room for it: only the temporary this process created is removed or renamed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def temp_path_for(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """The fixed temporary name ``clip.tmp.mp4`` for ``clip.mp4`` (suffix before the extension).

    Only for callers that must find their own leftovers by name; :func:`unique_temp` is the safe
    default.
    """
    path = Path(path)
    if path.suffix:
        return path.with_name(f"{path.stem}{suffix}{path.suffix}")
    return path.with_name(path.name + suffix)


def unique_temp(path: str | os.PathLike) -> Path:
    """Create an empty file beside ``path``, named ``.STEM.XXXXXXXX.tmp.EXT``, and return its path.

    The name is new (created with O_EXCL), hidden (folder scans do not take a half-written video
    for a clip), and keeps the extension, so tools choosing a format by extension (PyAV, OpenCV,
    h5py) see the right one. Permissions follow the umask, as for any new file. Raises OSError when
    the folder cannot be written.
    """
    path = Path(path)
    stem, ext = (path.stem, path.suffix) if path.suffix else (path.name, "")
    for _ in range(100):
        candidate = path.with_name(f".{stem}.{secrets.token_hex(4)}.tmp{ext}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, tmp: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` on success, delete it on any failure.

    Exceptions and Ctrl-C remove the temporary file; a process killed outright leaves only the
    temporary name behind, never a partial file under the final one. ``tmp`` defaults to a fresh
    :func:`unique_temp`; a ``tmp`` given by the caller is the caller's name, removed first if a
    stale one is there.
    """
    final = Path(path)
    if tmp is None:
        tmp = unique_temp(final)
    else:
        tmp = Path(tmp)
        tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def hold_lock(lock: str | os.PathLike) -> Iterator[bool]:
    """Hold the lock file ``lock`` (an ``flock``) for the ``with`` block; yields False, at once, if
    another process holds it. The kernel releases the lock of a killed process, so a stale lock file
    never blocks a rerun; the holder removes the file when it is done."""
    import fcntl  # POSIX only: imported here so that the rest of this module works everywhere

    lock = Path(lock)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed this lock file as we opened it: take the next one
    try:
        yield True
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
