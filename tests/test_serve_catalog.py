"""The serve catalog keeps the engines of the models used last only: onnxruntime's sessions hold their
buffers between frames, so a server must not keep one pool per style it was ever asked for."""

from __future__ import annotations

import numpy as np
import pytest

from tests.testmodel import save_untrained
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.models.zoo import ModelEntry
from vidstyle.serve.catalog import Catalog


@pytest.fixture
def entries(tmp_path):
    return [ModelEntry(name, save_untrained(tmp_path, name), "path") for name in ("a", "b", "c")]


def test_the_pools_of_the_two_models_used_last_are_kept_and_the_others_let_go(entries):
    catalog = Catalog(EngineConfig(device="cpu", threads=1, backend="torch"))
    a, b, c = entries
    pool_a, pool_b = catalog.pool(a), catalog.pool(b)
    assert catalog.pool(a) is pool_a and catalog.pool(b) is pool_b   # asked again: the same engines
    assert catalog.pool(a) is pool_a                                 # a is now the one used last
    pool_c = catalog.pool(c)                                         # b, used before a, goes
    assert catalog.pool(a) is pool_a and catalog.pool(c) is pool_c
    assert catalog.pool(b) is not pool_b                             # built again
    assert catalog.pool(a) is not pool_a                             # c and b were used after a


def test_a_pool_let_go_still_runs_the_job_holding_it(entries):
    catalog = Catalog(EngineConfig(device="cpu", threads=1, backend="torch"), keep_pools=1)
    a, b = entries[:2]
    running = catalog.pool(a).get(work_pixels=4 * 32 * 32, size=(32, 32))
    catalog.pool(b)                                                  # a is let go from the catalog
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    out = [stylized for _, stylized in running.pairs(iter(frames))]
    assert len(out) == 3 and all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in out)
    assert not np.array_equal(out[0], out[2])                       # each frame stylized, not a copy
