"""`vidstyle infer` / `python infer.py` and `vidstyle models`, end to end on synthetic clips."""

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.clips import distinct_frames, truncate, write_garbage, write_test_clip
from vidstyle.cli import main
from vidstyle.infer.onnxengine import OnnxStylizer
from vidstyle.infer.stylize import EngineConfig, Stylizer
from vidstyle.io.video import iter_frames, probe
from vidstyle.models.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2 seconds at 12 frames/s, 64x48, with a 440 Hz AAC track."""
    frames = distinct_frames(24, width=64, height=48)
    return write_test_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", frames, fps=12, audio=True)


def _infer(capsys, *args):
    # One thread: the cores are shared with other test runs, and tiny frames gain nothing from two.
    code = main(["infer", *map(str, args), "--quiet", "--device", "cpu", "--threads", "1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp" in p.name)


def _audio_codecs(path):
    with av.open(str(path)) as container:
        return [s.codec_context.name for s in container.streams.audio]


def test_output_keeps_frame_count_rate_duration_and_audio(capsys, clip, model):
    code, out, err = _infer(capsys, clip, "--model", model)
    output = clip.parent / "walk.testnet.mp4"
    assert code == 0, err
    assert str(output) in out and "frames/s" in out
    src, dst = probe(clip), probe(output)
    assert (dst.num_frames, dst.fps, dst.width, dst.height) == (24, 12.0, 64, 48)
    assert dst.duration == pytest.approx(src.duration, abs=1 / 12)
    assert dst.has_audio and _audio_codecs(output) == _audio_codecs(clip) == ["aac"]
    assert _leftovers(clip.parent) == []


def test_odd_frame_size_round_trips(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "odd.mp4", distinct_frames(5, width=333, height=241), fps=10)
    code, _, err = _infer(capsys, src, "--model", model, "-o", tmp_path / "odd_out.mp4")
    assert code == 0, err
    info = probe(tmp_path / "odd_out.mp4")
    assert (info.width, info.height, info.num_frames) == (333, 241, 5)


def test_rotated_input_gives_output_displayed_the_same_way_up(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "phone.mp4", distinct_frames(3, width=40, height=24), fps=10,
                          rotation=90)
    code, _, err = _infer(capsys, src, "--model", model, "-o", tmp_path / "out.mp4")
    assert code == 0, err
    assert probe(tmp_path / "out.mp4").size == probe(src).size == (24, 40)


def test_lossless_output_decodes_to_the_networks_exact_output(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "in.mp4", distinct_frames(6, width=40, height=32), fps=12)
    out = tmp_path / "exact.mp4"
    code, _, err = _infer(capsys, src, "--model", model, "-o", out, "--lossless", "--backend", "torch")
    assert code == 0, err
    expected = Stylizer(load_model(model).net, EngineConfig(device="cpu", compile=False, threads=1))(
        np.stack(list(iter_frames(src))))
    assert np.array_equal(np.stack(list(iter_frames(out))), expected)


def test_side_by_side_puts_the_input_left_of_the_output(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "in.mp4", distinct_frames(4, width=40, height=32), fps=12)
    out = tmp_path / "sbs.mp4"
    code, _, err = _infer(capsys, src, "--model", model, "-o", out, "--side-by-side", "--lossless")
    assert code == 0, err
    got = np.stack(list(iter_frames(out)))
    assert got.shape == (4, 32, 80, 3)
    assert np.array_equal(got[:, :, :40], np.stack(list(iter_frames(src))))


def test_start_and_duration_cut_video_and_audio_alike(capsys, tmp_path, clip, model):
    out = tmp_path / "part.mp4"
    code, _, err = _infer(capsys, clip, "--model", model, "-o", out, "--start", "0.5", "--duration", "1")
    assert code == 0, err
    info = probe(out)
    assert info.num_frames == 12 and info.has_audio
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(1.0, abs=0.05)


def test_max_size_shrinks_frames_keeping_their_shape(capsys, tmp_path, clip, model):
    out = tmp_path / "small.mp4"
    code, _, err = _infer(capsys, clip, "--model", model, "-o", out, "--max-size", "32")
    assert code == 0, err
    assert (probe(out).width, probe(out).height) == (32, 24)


def test_frame_folder_input_is_stylized(capsys, tmp_path, model):
    import cv2
    folder = tmp_path / "shot"
    folder.mkdir()
    for t, frame in enumerate(distinct_frames(3, width=32, height=24)):
        cv2.imwrite(str(folder / f"{t:04d}.png"), frame[..., ::-1])
    code, _, err = _infer(capsys, folder, "--model", model)
    assert code == 0, err
    assert probe(tmp_path / "shot.testnet.mp4").num_frames == 3


def _audio_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        for start in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _no_frames(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.mp4", "not found"),
    (lambda d: write_garbage(d / "text.mp4"), "text.mp4"),
    (lambda d: _audio_only(d / "sound.mp4"), "no video stream"),
    (lambda d: _no_frames(d / "empty.mp4"), "empty.mp4"),
])
def test_unusable_input_is_one_line_exit_2_and_no_output(capsys, tmp_path, model, make, message):
    src = make(tmp_path)
    out = tmp_path / "out.mp4"
    code, _, err = _infer(capsys, src, "--model", model, "-o", out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and _leftovers(tmp_path) == []


def test_truncated_input_keeps_what_decodes_and_says_so(capsys, tmp_path, model):
    src = write_test_clip(tmp_path / "cut.mp4", distinct_frames(24, width=64, height=48), fps=12)
    truncate(src, 0.5)
    out = tmp_path / "out.mp4"
    code, _, err = _infer(capsys, src, "--model", model, "-o", out)
    partial = tmp_path / "out.partial.mp4"
    assert code == 2 and "truncated" in err and len(err.strip().splitlines()) == 1
    assert 0 < probe(partial).num_frames < 24 and f"{probe(partial).num_frames} frames" in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_output_in_a_missing_folder_is_refused_before_any_work(capsys, tmp_path, clip, model):
    code, _, err = _infer(capsys, clip, "--model", model, "-o", tmp_path / "nope" / "out.mp4")
    assert code == 2 and "does not exist" in err


def test_unknown_model_lists_the_known_ones(capsys, tmp_path, clip, model, monkeypatch):
    monkeypatch.setenv("VIDSTYLE_MODELS", str(model.parent))
    code, _, err = _infer(capsys, clip, "--model", "no_such_style")
    assert code == 2 and "unknown model 'no_such_style'" in err and "testnet" in err


@pytest.mark.parametrize("content", [b"\x07" * 300, b'{"__metadata__": 5}'])
def test_corrupt_or_foreign_model_file_is_exit_2(capsys, tmp_path, clip, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    code, _, err = _infer(capsys, clip, "--model", bad, "-o", tmp_path / "o.mp4")
    assert code == 2 and "bad.safetensors" in err and not (tmp_path / "o.mp4").exists()


def test_interrupt_leaves_no_file_under_the_final_name(capsys, tmp_path, clip, model, monkeypatch):
    calls = []

    def interrupted(self, batch):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return batch
    for engine in (Stylizer, OnnxStylizer):    # whichever backend auto picks
        monkeypatch.setattr(engine, "_run_batch", interrupted)
    out = tmp_path / "out.mp4"
    code, _, _ = _infer(capsys, clip, "--model", model, "-o", out)
    assert code == 130 and not out.exists() and _leftovers(tmp_path) == []


def test_models_command_lists_user_models_with_style_and_description(capsys, tmp_path, model,
                                                                      monkeypatch):
    monkeypatch.setenv("VIDSTYLE_MODELS", str(model.parent))
    monkeypatch.chdir(tmp_path)
    assert main(["models"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("testnet")]
    assert len(lines) == 1 and "huang" in lines[0] and "[user] untrained, for tests" in lines[0]
    assert main(["models", "--long"]) == 0
    out = capsys.readouterr().out
    assert "testnet" in out and "none.jpg" in out and "untrained, for tests" in out


@pytest.mark.slow
def test_infer_script_reports_bad_input_in_one_line(tmp_path, model):
    result = subprocess.run([sys.executable, str(ROOT / "infer.py"), str(tmp_path / "none.mp4"),
                             "--model", str(model)], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 2
    expected = f"vidstyle: error: video not found: {tmp_path / 'none.mp4'}"
    assert result.stderr.strip().splitlines() == [expected]


def _policy_when_commands_load(monkeypatch, value):
    """OMP_WAIT_POLICY as the command modules (and so torch) are first imported by ``main``."""
    import vidstyle.cli as cli

    monkeypatch.setenv("OMP_WAIT_POLICY", "unset")  # records the caller's value for the undo
    if value is None:
        monkeypatch.delenv("OMP_WAIT_POLICY")
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", value)
    seen = []
    build_parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: seen.append(os.environ.get("OMP_WAIT_POLICY"))
                        or build_parser())
    assert main(["models", "--quiet"]) == 0
    return seen[0], os.environ.get("OMP_WAIT_POLICY")


def test_every_command_makes_openmp_wait_passively_before_its_module_loads(capsys, monkeypatch):
    assert _policy_when_commands_load(monkeypatch, None) == ("PASSIVE", "PASSIVE")


def test_a_wait_policy_the_user_set_is_kept(capsys, monkeypatch):
    assert _policy_when_commands_load(monkeypatch, "ACTIVE") == ("ACTIVE", "ACTIVE")


def test_infer_options_left_out_are_the_library_defaults():
    import vidstyle.cli as cli
    from vidstyle.infer.color import ColorOptions
    from vidstyle.infer.stylize import InferOptions

    args = cli.build_parser().parse_args(["infer", "clip.mp4", "--model", "m"])
    engine, options, color = EngineConfig(), InferOptions(), ColorOptions()
    assert (args.device, args.batch_size, args.compile, args.threads, args.backend) == \
        (engine.device, engine.batch_size, engine.compile, engine.threads, engine.backend)
    assert (args.crf, args.preset, args.start, args.duration, args.lossless, args.side_by_side) == \
        (options.crf, options.preset, options.start, options.duration, options.lossless,
         options.side_by_side)
    assert (args.strength, args.preserve_color) == (color.strength, color.preserve_color)
