"""What the benchmark scripts share: this checkout on the import path, where the example clips are,
a timing loop, and the one-line description of the machine that heads every table.

The scripts run as ``python benchmarks/NAME.py`` from the repository root, so Python puts benchmarks/
on the path and they import this module as ``common``. Importing it puts the repository root first on
the path, so the ``vidstyle`` they measure is this checkout's, whichever one is installed; a script
therefore imports ``common`` before ``vidstyle`` (isort's order keeps it there: c before v).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Example clips kept beside the checkout (../shared/data/clips), the default input of the flow benchmarks.
SHARED_CLIPS = ROOT.parent / "shared" / "data" / "clips"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> str:
    """A table's header line for a torch benchmark: the GPU on ``cuda*``, else the CPU and its cores."""
    import torch  # here, not at the top: the flow benchmarks use this module and never load torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}"


def timed_calls(step: Callable[[], object], min_seconds: float, min_calls: int) -> tuple[int, float]:
    """Call ``step`` until both ``min_calls`` and ``min_seconds`` are reached: (calls, seconds)."""
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        step()
        calls += 1
    return calls, time.perf_counter() - start
