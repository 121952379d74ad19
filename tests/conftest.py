"""Shared pytest set-up and fixtures. The checkout is importable without installing it because
pyproject.toml's pytest section puts the repository root on the path (``pythonpath``)."""

import atexit
import os
import shutil
import tempfile

import pytest

# ONNX exports made by tests (the onnx backend caches them) go to a folder of this run, not the home.
os.environ["VIDSTYLE_CACHE"] = tempfile.mkdtemp(prefix="vidstyle-test-cache-")
atexit.register(shutil.rmtree, os.environ["VIDSTYLE_CACHE"], True)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained model file (``tests.testmodel.save_untrained``): the inference tests need the
    network's behaviour, not its looks. A test module may define its own ``model`` instead."""
    from tests.testmodel import save_untrained

    return save_untrained(tmp_path_factory.mktemp("models"))
