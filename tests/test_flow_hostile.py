"""Flow files that point outside themselves are refused before any of their data is read."""

import h5py
import numpy as np
import pytest

from tests.test_flowstore import ATTRS, H, T, W, random_clip
from vidstyle.cli import main
from vidstyle.errors import FlowFileError
from vidstyle.flow.flowstore import FlowFile, validate
from vidstyle.flow.flowwriter import write_clip

SECRET = b"secret: the password is hunter2\n"


def good_file(folder):
    return write_clip(folder / "clip.h5", *random_clip(), attrs=ATTRS)


def secret_file(folder):
    """A file of the frames' byte size that starts with SECRET: what a hostile flow file would read."""
    path = folder / "secret.txt"
    path.write_bytes((SECRET * (T * H * W * 3 // len(SECRET) + 1))[: T * H * W * 3])
    return path


def external_storage(folder, path):
    secret = secret_file(folder)
    with h5py.File(path, "a") as h5:
        del h5["frames"]
        h5.create_dataset("frames", shape=(T, H, W, 3), dtype=np.uint8,
                          external=[(str(secret), 0, secret.stat().st_size)])


def virtual_dataset(folder, path):
    other = folder / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["data"] = np.frombuffer(secret_file(folder).read_bytes(), np.uint8).reshape(T, H, W, 3)
    layout = h5py.VirtualLayout(shape=(T, H, W, 3), dtype=np.uint8)
    layout[:] = h5py.VirtualSource(str(other), "data", shape=(T, H, W, 3))
    with h5py.File(path, "a") as h5:
        del h5["frames"]
        h5.create_virtual_dataset("frames", layout)


def external_link(folder, path):
    other = folder / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["frames"] = np.frombuffer(secret_file(folder).read_bytes(), np.uint8).reshape(T, H, W, 3)
    with h5py.File(path, "a") as h5:
        del h5["frames"]
        h5["frames"] = h5py.ExternalLink(str(other), "/frames")


def soft_link(folder, path):
    with h5py.File(path, "a") as h5:
        h5.move("mask", "elsewhere")
        h5["mask"] = h5py.SoftLink("/elsewhere")


HOSTILE = {"external storage": external_storage, "virtual dataset": virtual_dataset,
           "external link": external_link, "soft link": soft_link}


@pytest.mark.parametrize("kind", HOSTILE)
def test_files_that_reach_outside_themselves_are_refused(tmp_path, kind):
    path = good_file(tmp_path)
    HOSTILE[kind](tmp_path, path)
    with pytest.raises(FlowFileError, match="self-contained"):
        validate(path)
    with pytest.raises(FlowFileError, match="self-contained"):
        FlowFile(path)


@pytest.mark.parametrize("kind", ["external storage", "external link"])
def test_show_and_inspect_give_one_line_and_write_no_picture(tmp_path, kind, capsys):
    path = good_file(tmp_path)
    HOSTILE[kind](tmp_path, path)
    picture = tmp_path / "pair.png"
    assert main(["flows", "show", str(path), "--out", str(picture)]) == 2
    assert main(["flows", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "self-contained" in err and "hunter2" not in err
    assert not picture.exists()


def test_a_plain_file_with_the_secret_nearby_still_reads(tmp_path):
    path = good_file(tmp_path)
    secret_file(tmp_path)
    with FlowFile(path) as clip:
        np.testing.assert_array_equal(clip.frame(0), random_clip()[0][0])
