"""Refuse HDF5 files that point outside themselves.

HDF5 lets a dataset keep its bytes in other files (external storage), be assembled from other files'
datasets (virtual datasets), and lets a name be a soft link or a link into another file. Reading such a
flow file would read whatever file it names (a password file, another user's data) and hand its
bytes on as frames. A file we wrote never uses any of these, so a file that does is hostile or foreign.
"""

from __future__ import annotations

import h5py

from vidstyle.errors import FlowFileError


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
