"""The onnx backend's streams: several sessions running frames side by side, in order."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tests.clips import distinct_frames, write_test_clip
from vidstyle.cli import main
from vidstyle.errors import ConfigError, ModelError
from vidstyle.infer import onnxengine
from vidstyle.infer.engines import StylizerPool
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.infer.onnxengine import OnnxStylizer, split_threads
from vidstyle.infer.stylize import Stylizer
from vidstyle.models import backends
from vidstyle.models.backends import cached_export
from vidstyle.models.net import build_net
from vidstyle.models.zoo import ModelCard, save_model

pytestmark = pytest.mark.skipif(not backends.onnx_installed(), reason="onnxruntime/onnx not installed")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    torch.manual_seed(0)
    net = build_net("lite", channels=(4, 8, 8), res_blocks=1).eval()
    return cached_export(net, tmp_path_factory.mktemp("onnx"))


def engine(path, **kw):
    return OnnxStylizer(path, EngineConfig(device="cpu", backend="onnx", **kw))


@pytest.mark.parametrize("threads, streams, cores, expected", [
    (0, 0, 2, (2, 1, 2)),      # the default on two cores: two single-threaded sessions
    (0, 0, 1, (1, 1, 1)),
    (0, 0, 16, (2, 8, 16)),
    (1, 0, 16, (1, 1, 1)),     # --threads 1 means one thread in all
    (6, 3, 16, (3, 2, 6)),
    (2, 4, 16, (4, 1, 2)),     # more streams than threads: one thread each, never zero
])
def test_threads_are_split_between_the_streams(threads, streams, cores, expected):
    assert split_threads(threads, streams, cores) == expected


def test_streams_give_the_same_frames_in_the_same_order_across_size_changes(export, monkeypatch):
    monkeypatch.setattr(onnxengine, "usable_cores", lambda: 4)   # three streams are not capped at 2
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size, dtype=np.uint8)
              for size in [(40, 56, 3)] * 5 + [(33, 45, 3)] * 4 + [(40, 56, 3)] * 3]
    one = engine(export, streams=1)
    three = engine(export, streams=3, threads=3)
    assert (one.streams, three.streams, three.plan.threads) == (1, 3, 1)
    expected = [one(f[None])[0] for f in frames]
    got = list(three.pairs(iter(frames)))
    assert len(got) == len(frames)
    for (src, out), f, e in zip(got, frames, expected):
        assert src is f and np.array_equal(out, e)


def test_two_streams_really_run_two_frames_at_once(export, monkeypatch):
    # Each call waits at a barrier for a second call: one stream at a time would time out there.
    meeting = threading.Barrier(2, timeout=10)
    real_call = backends.OnnxRunner.__call__
    threads_seen = set()

    def meet_then_run(runner, x):
        threads_seen.add(threading.get_ident())
        meeting.wait()
        return real_call(runner, x)

    monkeypatch.setattr(backends.OnnxRunner, "__call__", meet_then_run)
    frames = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(6)]
    out = [o for _, o in engine(export, streams=2, threads=2).pairs(iter(frames))]
    assert len(out) == 6 and len(threads_seen) == 2


def test_large_frames_go_one_at_a_time_through_one_session_with_every_thread(export, monkeypatch):
    monkeypatch.setattr(onnxengine, "STREAMS_MAX_PIXELS", 40 * 40)
    lock, busy, most, threads_of_runner, levels = threading.Lock(), [0], [0], [], set()
    real_call = backends.OnnxRunner.__call__

    def counted(runner, x):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        options = runner.session.get_session_options()
        threads_of_runner.append((x.shape[-1], options.intra_op_num_threads))
        levels.add((x.shape[-1], options.graph_optimization_level, options.enable_cpu_mem_arena))
        try:
            time.sleep(0.05)       # room for a second call to overlap, were one allowed
            return real_call(runner, x)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(backends.OnnxRunner, "__call__", counted)
    two = engine(export, streams=2, threads=2)
    assert (two.streams_for(40, 40), two.streams_for(48, 48)) == (2, 1)
    small = [np.full((40, 40, 3), i, np.uint8) for i in range(4)]
    large = [np.full((48, 48, 3), i, np.uint8) for i in range(4)]
    out = list(two.pairs(iter(small + large + small)))
    assert [src.shape[0] for src, _ in out] == [40] * 4 + [48] * 4 + [40] * 4
    assert most[0] == 2, "the small frames should still run side by side"
    assert {t for width, t in threads_of_runner if width == 48} == {2}
    assert {t for width, t in threads_of_runner if width == 40} == {1}
    basic, full = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert levels == {(48, basic, False), (40, full, True)}, \
        "large frames: the lean graph without the memory arena; small ones: the full graph with it"

    busy[0] = most[0] = 0
    list(two.pairs(iter(large)))
    assert most[0] == 1


def test_an_error_in_a_stream_reaches_the_caller(export):
    frames = [np.zeros((32, 32, 3), np.uint8)] * 3 + [np.zeros((3, 8, 3), np.uint8)]
    with pytest.raises(ModelError, match="at least"):
        list(engine(export, streams=2, threads=2).pairs(iter(frames)))


def test_the_pool_passes_streams_on_to_the_onnx_engine_and_torch_runs_one():
    torch.manual_seed(0)
    net = build_net("huang", channels=(4, 8, 8), res_blocks=1).eval()
    stylizer = StylizerPool(net, EngineConfig(device="cpu", backend="onnx", threads=2, streams=2)).get(None)
    assert stylizer.streams == 2
    assert Stylizer(net, EngineConfig(device="cpu", backend="torch", threads=1)).streams == 1


def test_negative_streams_are_refused(export):
    with pytest.raises(ConfigError, match="streams"):
        engine(export, streams=-1)


def test_infer_streams_option_writes_the_same_video_and_refuses_nonsense(tmp_path, capsys):
    torch.manual_seed(0)
    net = build_net("lite", channels=(4, 8, 8), res_blocks=1).eval()
    weights = save_model(net, tmp_path / "small.safetensors", ModelCard("small", net.config))
    src = write_test_clip(tmp_path / "in.mp4", distinct_frames(6, width=48, height=32), fps=10)
    common = [str(src), "--model", str(weights), "-q", "--backend", "onnx", "--lossless"]
    assert main(["infer", *common, "-o", str(tmp_path / "one.mp4"), "--streams", "1"]) == 0
    assert main(["infer", *common, "-o", str(tmp_path / "two.mp4"), "--streams", "2"]) == 0
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "two.mp4").read_bytes()
    capsys.readouterr()
    assert main(["infer", *common, "-o", str(tmp_path / "bad.mp4"), "--streams", "-2"]) == 2
    err = capsys.readouterr().err
    assert "streams" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.mp4").exists()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_a_process_limited_to_one_cpu_runs_one_single_threaded_session():
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from vidstyle.infer.onnxengine import split_threads; print(split_threads(0, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1, 1, 1)"
