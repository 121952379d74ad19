"""HDF5 files read and written safely: refuse files that point outside themselves; write under a
unique temporary name, into disk space claimed up front, with failures told in one line.

HDF5 lets a dataset keep its bytes in other files (external storage), be assembled from other files'
datasets (virtual datasets), and lets a name be a soft link or a link into another file. Reading such a
flow file would read whatever file it names (a password file, another user's data) and hand its
bytes on as frames. A file we wrote never uses any of these, so a file that does is hostile or foreign.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
from pathlib import Path

import h5py

from vidstyle.errors import FlowFileError

_FALLOC_FL_KEEP_SIZE = 1   # linux/falloc.h


def check_self_contained(h5: h5py.File) -> None:
    """Raise FlowFileError unless every object under the root is reached by a hard link and every
    dataset keeps its bytes inside this file. Links are inspected without being followed."""
    _check_group(h5, h5.filename)


def _check_group(group: h5py.Group, filename: str) -> None:
    for name in group:
        link = group.get(name, getlink=True)
        where = f"{group.name.rstrip('/')}/{name}"
        if not isinstance(link, h5py.HardLink):
            kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
            raise FlowFileError(f"{filename}: {where} is {kind}; flow files must be self-contained")
        item = group[name]
        if isinstance(item, h5py.Group):
            _check_group(item, filename)
        elif isinstance(item, h5py.Dataset):
            if item.is_virtual:
                raise FlowFileError(f"{filename}: {where} is a virtual dataset; "
                                    "flow files must be self-contained")
            if item.external:
                raise FlowFileError(f"{filename}: {where} keeps its data in another file; "
                                    "flow files must be self-contained")


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path``: two writers of one clip never share a temporary."""
    path = Path(path)
    return path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")


def leftover_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporaries of ``path`` (see ``temp_path``) in its folder, e.g. left by a killed job."""
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.[0-9a-f]{8}\.tmp")
    return sorted(p for p in path.parent.glob(f"{path.name}.*.tmp") if pattern.fullmatch(p.name))


def storage_error(path: Path, exc: BaseException) -> FlowFileError:
    """One line for a failed write: the system's reason. HDF5's own messages span lines, name its
    internals, and carry the errno only in their text."""
    code = getattr(exc, "errno", None)
    if not code:
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found[1]) if found else None
    reason = os.strerror(code) if code else (str(exc).splitlines() or [type(exc).__name__])[0]
    hint = "; disk full?" if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, None) else ""
    return FlowFileError(f"{path}: writing the flow file failed ({reason}{hint})")


def reserve_space(path: Path, size: int) -> None:
    """Claim the disk blocks of a ``size``-byte file before writing into it, leaving its length as it
    is (Linux ``fallocate`` with FALLOC_FL_KEEP_SIZE; the blocks past its end are given back when it
    is trimmed after closing). A full disk then fails here, cleanly, instead of inside HDF5, which
    can lose writes and crash when space runs out. Elsewhere the read-back check still guards."""
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fd = os.open(path, os.O_RDWR)
    try:
        if fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, size) != 0:
            code = ctypes.get_errno()
            if code not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)
