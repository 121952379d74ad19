"""A reader that stops early (`vidstyle models | head -1`) ends the command quietly."""

import os
import subprocess
import sys

from tests.test_precompute import ROOT


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    # The reader is gone before the command writes a byte: its first write fails with EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "vidstyle", "models"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.returncode == 141
