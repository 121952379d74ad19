"""A disk that fills up while a flow file is written: the file never appears as finished.

HDF5 writes a chunk when it leaves its cache, and may drop the error of that write and still close the
file cleanly; on a full tmpfs this gave zero-filled frames in files the job called ok. Here the disk is
simulated: a file object whose writes fail with ENOSPC for a while (as when another job's temporary
file is deleted and space frees up again), then succeed.
"""

import errno
import io
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor

import h5py
import pytest

from tests.clips import write_test_clip
from tests.synthetic import moving_square_clip
from tests.test_flowstore import ATTRS, random_clip
from vidstyle.errors import FlowFileError
from vidstyle.flow.flowstore import validate
from vidstyle.flow.flowwriter import write_clip
from vidstyle.flow.precompute import Clip, FlowJob, process_clip


class FullForAWhile(io.FileIO):
    """Writes ending beyond byte ``start`` fail with ENOSPC ``count`` times, then succeed again."""

    def __init__(self, path, start, count):
        super().__init__(path, "w+b")
        self.start, self.count = start, count

    def write(self, data):
        if self.tell() + len(data) > self.start and self.count > 0:
            self.count -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def fill_disk(start, count):
    """Make every HDF5 file this process opens for writing sit on a disk full for ``count`` writes."""
    real_file = h5py.File

    def file(name, mode="r", *args, **kwargs):
        if mode == "w":
            return real_file(FullForAWhile(name, start, count), mode, *args, **kwargs)
        return real_file(name, mode, *args, **kwargs)

    h5py.File = file


def isolated(function, *args):
    """``function(*args)`` in a fresh process. HDF5 keeps a file whose writes failed in its open
    list, and with the simulated disk (a Python object) a later call in the same process can crash."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def write_on_full_disk(folder, start, count):
    """(error message or None, files left in ``folder``) after writing a clip there."""
    fill_disk(start, count)
    try:
        write_clip(folder / "clip.h5", *random_clip(), attrs=ATTRS)
        error = None
    except FlowFileError as exc:
        error = str(exc)
    return error, sorted(os.listdir(folder))


def precompute_on_full_disk(source, out, start, count):
    fill_disk(start, count)
    return process_clip(Clip("clip", source), out, FlowJob()), sorted(os.listdir(out))


# (start byte, failed writes): early and late in the file, one lost write and several.
FAILURES = [(6_000, 1), (6_000, 4), (20_000, 3)]


@pytest.mark.parametrize("start,count", FAILURES)
def test_a_write_lost_to_a_full_disk_fails_the_file_and_leaves_nothing(tmp_path, start, count):
    error, left = isolated(write_on_full_disk, tmp_path, start, count)
    assert error is not None and "disk full" in error and "\n" not in error
    assert left == []


@pytest.mark.parametrize("start,count", [(150_000, 1), (400_000, 2)])
def test_precompute_reports_a_full_disk_as_one_failed_line_and_a_rerun_finishes(tmp_path, start, count):
    source = write_test_clip(tmp_path / "clip.mp4", moving_square_clip(12, 96, 128))
    out = tmp_path / "flows"
    out.mkdir()
    result, left = isolated(precompute_on_full_disk, source, out, start, count)
    assert result.status == "failed" and result.output is None
    assert "disk full" in result.error and "\n" not in result.error
    assert left == []

    rerun = process_clip(Clip("clip", source), out, FlowJob())     # room on the disk again
    assert rerun.status == "ok" and validate(rerun.output)["num_frames"] == 12
    with h5py.File(rerun.output, "r") as h5:
        assert all(h5["frames"][t].any() for t in range(12))
