"""The inference engine: exact plumbing, batching, odd sizes, threads between stages, device plans."""

import threading
import time

import numpy as np
import pytest
import torch

import vidstyle.infer.stylize as stylize
from vidstyle.background import BackgroundSink, in_background
from vidstyle.errors import ConfigError, VideoError
from vidstyle.infer.stylize import AUTO_COMPILE_MIN_PIXELS, EngineConfig, Stylizer, fit_size, plan
from vidstyle.models.net import build_net

CPU = EngineConfig(device="cpu", compile=False)


class Invert(torch.nn.Module):
    """A stand-in network with a known answer: 1 - x, exactly representable for x = k / 255."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return 1.0 - x


def _frames(n, height=24, width=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def test_engine_is_exact_on_a_network_with_a_known_answer():
    frames = _frames(3)
    assert np.array_equal(Stylizer(Invert(), CPU)(frames), 255 - frames)


def test_engine_takes_frames_in_any_memory_layout():
    bgr = _frames(2)
    rgb_view = bgr[..., ::-1]   # what OpenCV users pass: negative strides
    assert np.array_equal(Stylizer(Invert(), CPU)(rgb_view), 255 - rgb_view)
    assert Stylizer(Invert(), CPU)(bgr[:0]).shape == (0, 24, 32, 3)


def test_engine_matches_the_network_applied_by_hand():
    torch.manual_seed(0)
    net = build_net("huang").eval()
    frames = _frames(2, 40, 56)
    with torch.no_grad():
        # As the engine runs it on CPU: one frame per call, on a contiguous NCHW tensor. A batched
        # call or a channels-last input picks other convolution kernels, whose float sums can round
        # a value to the other side of .5.
        x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255).contiguous()
        y = torch.cat([net(x[i:i + 1]) for i in range(len(x))])
        expected = (y * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(Stylizer(net, CPU)(frames), expected)


@pytest.mark.parametrize("width,height", [(333, 241), (9, 7), (64, 48)])
def test_any_frame_size_comes_back_at_its_own_size_with_real_network(width, height):
    torch.manual_seed(0)
    out = Stylizer(build_net("huang"), CPU)(_frames(1, height, width))
    assert out.shape == (1, height, width, 3) and out.dtype == np.uint8


def test_stream_keeps_order_and_batches_without_mixing_sizes():
    net = Invert()
    frames = list(_frames(5)) + list(_frames(2, 16, 20, seed=1))
    pairs = list(Stylizer(net, EngineConfig(device="cpu", compile=False, batch_size=3)).pairs(frames))
    assert len(pairs) == 7
    for frame, (given, out) in zip(frames, pairs):
        assert given is frame and np.array_equal(out, 255 - frame)
    assert [c[0] for c in net.calls] == [3, 2, 2] and net.calls[-1][2:] == (16, 20)


def test_failed_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(module, **kw):
        def run(x):
            raise RuntimeError("no C++ compiler here")
        return run
    monkeypatch.setattr(torch, "compile", broken_compile)
    stylizer = Stylizer(Invert(), EngineConfig(device="cpu", compile=True))
    frames = _frames(2)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        out = stylizer(frames)
    assert np.array_equal(out, 255 - frames) and not stylizer.compiled


def test_compiled_engine_pads_short_last_batch_to_keep_one_shape(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module, **kw: module)
    net = Invert()
    frames = _frames(5)
    out = Stylizer(net, EngineConfig(device="cpu", compile=True, batch_size=4))(frames)
    assert np.array_equal(out, 255 - frames)
    assert [c[0] for c in net.calls] == [4, 4]


def test_cpu_plan_is_fp32_batch_one_and_compiles_only_long_jobs():
    short = plan(EngineConfig(device="cpu", backend="torch"), work_pixels=10 * 640 * 360)
    long = plan(EngineConfig(device="cpu", backend="torch"), work_pixels=AUTO_COMPILE_MIN_PIXELS)
    assert short.dtype == torch.float32 and short.batch_size == 1 and not short.channels_last
    assert not short.compile and long.compile
    assert not plan(EngineConfig(device="cpu", compile=False), work_pixels=10**12).compile


def test_impossible_device_settings_are_config_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA"):
        plan(EngineConfig(device="cuda"))
    with pytest.raises(ConfigError, match="CUDA only"):
        plan(EngineConfig(device="cpu", half=True))
    with pytest.raises(ConfigError, match="unknown device"):
        plan(EngineConfig(device="tpu-ish"))
    assert plan(EngineConfig(device="auto")).device.type == "cpu"


def test_non_uint8_frames_are_refused():
    with pytest.raises(VideoError, match="uint8"):
        Stylizer(Invert(), CPU)(np.zeros((1, 8, 8, 3), np.float32))


def test_fit_size_keeps_aspect_and_leaves_small_frames_alone():
    assert fit_size(1920, 1080, 640) == (640, 360)
    assert fit_size(1080, 1920, 640) == (360, 640)
    assert fit_size(640, 360, 1000) is None and fit_size(640, 360, None) is None
    with pytest.raises(ConfigError):
        fit_size(640, 360, 4)


def test_background_iteration_reraises_source_error_after_earlier_items():
    def source():
        yield 1
        yield 2
        raise VideoError("cut short")
    got = []
    with pytest.raises(VideoError, match="cut short"):
        for item in in_background(source(), depth=1):
            got.append(item)
    assert got == [1, 2]


def test_background_iteration_runs_ahead_but_stays_bounded_and_stops_early():
    produced, closed = [], threading.Event()

    def source():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()
    it = in_background(source(), depth=3)
    assert next(it) == 0
    # Runs ahead: while the caller holds item 0, the thread fills the queue of depth 3, so at least
    # 1 + 3 items exist. A producer that waited for the caller, or a queue shorter than depth,
    # stops at 1 or 2 and never gets there. Polled, not slept, so a loaded machine only waits longer.
    deadline = time.monotonic() + 10.0
    while len(produced) < 1 + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) >= 1 + 3
    time.sleep(0.3)   # a chance to overrun the bound, were the queue unbounded
    assert len(produced) <= 1 + 3 + 1   # the one taken, a full queue, one waiting to be put
    it.close()
    assert closed.wait(5.0)


def test_background_sink_consumes_in_order_and_reports_errors():
    seen = []
    sink = BackgroundSink(seen.append, depth=2)
    for i in range(20):
        sink.put(i)
    sink.close()
    assert seen == list(range(20))

    def fail(item):
        raise VideoError(f"disk full at {item}")
    sink = BackgroundSink(fail, depth=2)
    with pytest.raises(VideoError, match="disk full at 0"):
        for i in range(50):
            sink.put(i)
        sink.close()


def test_engine_threads_setting_is_applied_on_cpu(monkeypatch):
    chosen, other = [], torch.get_num_threads() + 1
    monkeypatch.setattr(stylize.torch, "set_num_threads", chosen.append)
    Stylizer(Invert(), EngineConfig(device="cpu", compile=False, threads=other))
    assert chosen == [other]
