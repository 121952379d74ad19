"""The version is written once, in vidstyle/__init__.py, and every place that reports it reads it there."""

import re
import subprocess
import sys
from pathlib import Path

import tomllib

import vidstyle

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_package_version():
    done = subprocess.run([sys.executable, "-m", "vidstyle", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"vidstyle {vidstyle.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", vidstyle.__version__)


def test_pyproject_reads_the_version_from_the_package_instead_of_repeating_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "vidstyle.__version__"}
