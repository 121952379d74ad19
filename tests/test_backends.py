"""Backends: the auto rule, the onnx runner against PyTorch, and the export cache."""

import numpy as np
import pytest
import torch

from tests.clips import distinct_frames, write_test_clip
from vidstyle.cli import main
from vidstyle.errors import ConfigError
from vidstyle.infer.engines import StylizerPool
from vidstyle.infer.onnxengine import OnnxStylizer
from vidstyle.infer.stylize import EngineConfig, InferOptions, Stylizer, plan, stylize_video
from vidstyle.io.video import iter_frames
from vidstyle.models.backends import ONNX_MAX_PIXELS, cached_export, choose_backend
from vidstyle.models.net import build_net
from vidstyle.models.zoo import ModelCard, save_model

needs_onnx = pytest.mark.skipif(not __import__("vidstyle.models.backends").models.backends.onnx_installed(),
                                reason="onnxruntime/onnx not installed")
FRAME_360P = 640 * 360


def small_net(seed: int = 0):
    torch.manual_seed(seed)
    return build_net("huang", channels=(4, 8, 8), res_blocks=1).eval()


@pytest.mark.parametrize("frames, expected", [(1, "onnx"), (299, "onnx"), (300, "torch"), (3000, "torch")])
def test_auto_picks_onnx_for_short_cpu_jobs_and_torch_for_long_ones(frames, expected):
    choices = {choose_backend("auto", "cpu", frames * FRAME_360P, onnx_ok=True) for _ in range(3)}
    assert choices == {expected}


@pytest.mark.parametrize("frames", [1, 300, 30000])
def test_auto_runs_a_lite_network_on_onnx_at_every_cpu_job_length(frames):
    work = frames * FRAME_360P
    assert choose_backend("auto", "cpu", work, onnx_ok=True, network="lite") == "onnx"
    assert choose_backend("auto", "cuda", work, onnx_ok=True, network="lite") == "torch"
    assert choose_backend("auto", "cpu", work, onnx_ok=False, network="lite") == "torch"
    assert choose_backend("auto", "cpu", None, onnx_ok=True, network="lite") == "torch"


def test_auto_falls_back_to_torch_where_onnx_cannot_serve():
    short = ONNX_MAX_PIXELS // 2
    assert choose_backend("auto", "cuda", short, onnx_ok=True) == "torch"
    assert choose_backend("auto", "cpu", short, onnx_ok=False) == "torch"
    assert choose_backend("auto", "cpu", short, onnx_ok=True, exportable=False) == "torch"
    assert choose_backend("auto", "cpu", None, onnx_ok=True) == "torch"      # a job of unknown size
    assert choose_backend("torch", "cpu", short, onnx_ok=True) == "torch"
    assert choose_backend("onnx", "cpu", 10 * ONNX_MAX_PIXELS, onnx_ok=True) == "onnx"


@pytest.mark.parametrize("args, message", [
    (("onnx", "cuda", 1, True), "CPU only"),
    (("onnx", "cpu", 1, False), "pip install"),
    (("tensorrt", "cpu", 1, True), "unknown backend"),
])
def test_impossible_backend_requests_are_config_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        choose_backend(*args)


@needs_onnx
def test_the_pool_turns_compile_off_for_onnx_and_refuses_both():
    onnx = StylizerPool(small_net(), EngineConfig(device="cpu", backend="onnx")).get(10 * ONNX_MAX_PIXELS)
    assert isinstance(onnx, OnnxStylizer) and not onnx.compiled
    assert plan(EngineConfig(device="cpu"), 10 * ONNX_MAX_PIXELS).compile is True
    with pytest.raises(ConfigError, match="--compile"):
        StylizerPool(small_net(), EngineConfig(device="cpu", backend="onnx", compile=True)).get(100)


def test_the_torch_engine_refuses_the_onnx_backend():
    with pytest.raises(ConfigError, match="StylizerPool"):
        Stylizer(small_net(), EngineConfig(device="cpu", backend="onnx"))


@needs_onnx
def test_onnx_stylizer_matches_torch_on_odd_frames_within_one_level():
    frames = np.random.default_rng(0).integers(0, 256, (2, 241, 333, 3), dtype=np.uint8)
    by_torch = Stylizer(small_net(), EngineConfig(device="cpu", backend="torch", threads=1))(frames)
    onnx = StylizerPool(small_net(), EngineConfig(device="cpu", backend="onnx", threads=1)).get(None)
    by_onnx = onnx(frames)
    diff = np.abs(by_torch.astype(int) - by_onnx.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


@needs_onnx
@pytest.mark.parametrize("net_name", ["huang", "lite"])
def test_each_backend_writes_the_same_video_within_tolerance(tmp_path, net_name):
    src = write_test_clip(tmp_path / "in.mp4", distinct_frames(5, width=45, height=33), fps=10)
    torch.manual_seed(0)
    net = build_net(net_name, channels=(4, 8, 8), res_blocks=1).eval()
    outputs = {}
    for backend in ("torch", "onnx"):
        engine = EngineConfig(device="cpu", backend=backend, threads=1)
        result = stylize_video(src, tmp_path / f"{backend}.mp4", net, engine,
                               InferOptions(lossless=True))
        assert result.backend == backend and result.frames == 5
        outputs[backend] = np.stack(list(iter_frames(result.output))).astype(int)
    assert outputs["torch"].shape == (5, 33, 45, 3)
    assert np.abs(outputs["torch"] - outputs["onnx"]).max() <= 1


@needs_onnx
def test_export_cache_reuses_a_file_per_weights(tmp_path):
    first = cached_export(small_net(0), tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_export(small_net(0), tmp_path) == first and first.stat().st_mtime_ns == stamp
    other = cached_export(small_net(1), tmp_path)
    assert other != first and sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])


@needs_onnx
def test_infer_command_reports_its_backend_and_refuses_onnx_with_compile(tmp_path, capsys):
    net = small_net()
    weights = save_model(net, tmp_path / "small.safetensors", ModelCard("small", net.config))
    src = write_test_clip(tmp_path / "in.mp4", distinct_frames(3, width=32, height=24), fps=10)
    common = [str(src), "--model", str(weights), "--quiet", "--device", "cpu", "--threads", "1"]
    assert main(["infer", *common, "-o", str(tmp_path / "a.mp4")]) == 0
    assert "onnx" in capsys.readouterr().out          # auto, a 3-frame job, onnxruntime installed
    assert main(["infer", *common, "-o", str(tmp_path / "b.mp4"), "--backend", "onnx", "--compile"]) == 2
    assert "--compile is for the torch backend" in capsys.readouterr().err
    assert not (tmp_path / "b.mp4").exists()


@needs_onnx
def test_unusable_cache_folder_is_a_config_error(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ConfigError, match="VIDSTYLE_CACHE"):
        cached_export(small_net(), blocker / "onnx")
