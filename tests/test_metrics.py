"""Metrics on synthetic clips whose motion is known: what E_warp, flicker and fidelity must say."""

from __future__ import annotations

import csv
import json
import math
import sys

import numpy as np
import pytest

from tests.synthetic import moving_square_clip, texture, translation_pair
from vidstyle.errors import ConfigError, VideoError
from vidstyle.evaluate import metrics
from vidstyle.evaluate import report as metrics_report
from vidstyle.evaluate.metrics import MetricsConfig, evaluate

T, H, W = 8, 64, 80


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """uint8 (T, H, W, 3): a textured square moving over a background that also moves."""
    return moving_square_clip(T, H, W, velocity=(2.0, 1.0), background_velocity=(1.0, 0.0))


def _score(clip, *stylized, **kw):
    return evaluate(list(clip), [(f"v{i}", list(s)) for i, s in enumerate(stylized)], **kw)


def _with_noise(clip, sigmas, seed=0):
    rng = np.random.default_rng(seed)
    noisy = [f + rng.normal(0.0, sigmas[t % len(sigmas)], f.shape)
             for t, f in enumerate(clip.astype(np.float64))]
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _pumped(clip, step=20):
    """The clip with its brightness going up and down by ``step`` levels every other frame."""
    offsets = np.where(np.arange(len(clip)) % 2 == 0, step, -step)[:, None, None, None]
    return np.clip(clip.astype(np.int16) + offsets, 0, 255).astype(np.uint8)


# --- pure measures --------------------------------------------------------------------------------

def test_warping_error_is_zero_with_the_true_flow_and_large_with_a_wrong_one():
    pair = translation_pair(48, 64, shift=(3.0, 2.0))
    a, b = metrics.to_unit(pair.frame_a), metrics.to_unit(pair.frame_b)
    mask = pair.valid.astype(np.uint8)
    assert metrics.warping_error(a, b, pair.flow_bw, mask) < 1e-10
    assert metrics.warping_error(a, b, pair.flow_fw, mask) > 1e-3      # wrong direction
    assert metrics.warping_error(a, b, np.zeros_like(pair.flow_bw), mask) > 1e-3


def test_warping_error_ignores_pixels_the_mask_rejects():
    pair = translation_pair(48, 64, shift=(3.0, 2.0))
    a, b = metrics.to_unit(pair.frame_a), metrics.to_unit(pair.frame_b)
    mask = pair.valid.astype(np.uint8)
    spoiled = b.copy()
    spoiled[~pair.valid] = 1.0 - spoiled[~pair.valid]
    assert not pair.valid.all()
    clean = metrics.warping_error(a, b, pair.flow_bw, mask)
    assert metrics.warping_error(a, spoiled, pair.flow_bw, mask) == clean


def test_warping_error_is_nan_when_the_mask_keeps_nothing():
    a = np.zeros((8, 8, 3), np.float32)
    flow_bw, mask = np.zeros((8, 8, 2), np.float32), np.zeros((8, 8), np.uint8)
    assert math.isnan(metrics.warping_error(a, a, flow_bw, mask))


def test_hf_energy_of_a_checkerboard_is_sixteen_and_of_a_flat_image_zero():
    checker = (np.indices((10, 12)).sum(axis=0) % 2).astype(np.float32)
    assert metrics.hf_energy(checker) == pytest.approx(16.0)
    assert metrics.hf_energy(np.full((10, 12), 0.7, np.float32)) == 0.0


def test_luma_uses_rec601_weights():
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1.0
    assert np.allclose(metrics.luma(red), 0.299)


def test_relative_change_is_difference_over_mean_and_zero_for_two_zeros():
    assert metrics.relative_change(1.0, 3.0) == pytest.approx(1.0)
    assert metrics.relative_change(0.0, 0.0) == 0.0


# --- whole clips ----------------------------------------------------------------------------------

def test_identical_stylized_video_gives_ratio_one_and_the_inputs_flicker(clip):
    report = _score(clip, clip)
    inp, same = report.videos
    assert inp.is_input and not same.is_input
    assert inp.e_warp > 0
    assert same.e_warp_ratio == 1.0
    assert same.luminance_flicker == inp.luminance_flicker
    assert same.hf_flicker == inp.hf_flicker
    assert report.num_frames == T and report.t == list(range(1, T))
    assert len(same.e_warp_curve) == T - 1
    assert 0.5 < report.mask_fraction <= 1.0


def test_motion_compensation_brings_the_inputs_e_warp_far_below_plain_frame_differences(clip):
    # A flow applied the wrong way round, or on the wrong grid, would not beat doing nothing.
    frames = metrics.to_unit(clip)
    no_compensation = float(np.mean((frames[1:] - frames[:-1]) ** 2))
    assert _score(clip, clip).videos[0].e_warp < 0.1 * no_compensation


def test_video_that_moves_exactly_like_its_input_has_the_inputs_e_warp(clip):
    # An inverted, channel-swapped copy is a per-pixel map of the input: it moves exactly as the
    # input does, so any E_warp it has comes from flow error alone, as the input's does.
    recoloured = 255 - clip[..., ::-1]
    report = _score(clip, recoloured)
    assert report.videos[1].e_warp_ratio == pytest.approx(1.0, abs=1e-4)


def test_per_frame_noise_scores_clearly_worse_on_e_warp_and_hf_flicker(clip):
    report = _score(clip, _with_noise(clip, sigmas=(3.0, 12.0)))
    inp, noisy = report.videos
    assert noisy.e_warp_ratio > 3.0
    assert noisy.hf_flicker > 3.0 * inp.hf_flicker


def test_brightness_pumping_scores_clearly_worse_on_e_warp_and_luminance_flicker(clip):
    report = _score(clip, _pumped(clip))
    inp, bad = report.videos
    assert bad.e_warp_ratio > 3.0
    assert bad.luminance_flicker > 0.1
    assert bad.luminance_flicker > 10.0 * inp.luminance_flicker


def test_stable_video_ranks_better_than_noisy_one_in_one_table(clip):
    report = _score(clip, clip, _with_noise(clip, sigmas=(8.0,)))
    stable, noisy = report.videos[1:]
    assert stable.e_warp < noisy.e_warp
    assert [v.name for v in report.videos] == ["input", "v0", "v1"]


@pytest.mark.parametrize("cut", ["stylized_shorter", "stylized_longer"])
def test_mismatched_lengths_raise_a_clear_error(clip, cut):
    stylized = clip[:-1] if cut == "stylized_shorter" else np.concatenate([clip, clip[:1]])
    common = min(len(clip), len(stylized))
    with pytest.raises(VideoError, match=rf"same number of frames.*--max-frames {common}\)"):
        _score(clip, stylized)


def test_stylized_video_of_another_size_is_resized_and_the_table_says_so(clip):
    import cv2

    small = np.stack([cv2.resize(f, (W // 2, H // 2), interpolation=cv2.INTER_AREA) for f in clip])
    report = _score(clip, small)
    assert report.videos[1].resized_from == (W // 2, H // 2)
    assert report.videos[0].resized_from is None
    assert math.isfinite(report.videos[1].e_warp)
    assert f"resized to {W}x{H}" in metrics_report.format_table(report)


def test_frames_that_are_not_rgb_uint8_are_rejected(clip):
    with pytest.raises(VideoError, match="not an RGB uint8"):
        _score(clip, clip.astype(np.float32))


def test_table_has_one_row_per_video_input_first(clip):
    report = _score(clip, clip, 255 - clip)
    lines = metrics_report.format_table(report).splitlines()
    rows = [line for line in lines if line.startswith(("input", "v0", "v1"))]
    assert [r.split()[0] for r in rows[1:]] == ["input", "v0", "v1"]   # rows[0] is the header line
    assert "(input)" in rows[1]
    assert "style loss" not in lines[2]      # no --style, no fidelity columns


# --- output files ---------------------------------------------------------------------------------

def test_json_output_parses_and_holds_the_documented_fields(clip, tmp_path):
    report = _score(clip, clip, _with_noise(clip, sigmas=(8.0,)))
    out = tmp_path / "m.json"
    metrics_report.write_json(report, out)
    data = json.loads(out.read_text())
    assert data["format"] == "vidstyle-metrics/1"
    assert {"input", "width", "height", "num_frames", "num_pairs", "flow", "mask_fraction",
            "fidelity"} <= set(data)
    assert (data["width"], data["height"], data["num_frames"], data["num_pairs"]) == (W, H, T, T - 1)
    assert data["fidelity"] is None
    assert [v["role"] for v in data["videos"]] == ["input", "stylized", "stylized"]
    fields = {"name", "e_warp", "e_warp_ratio", "luminance_flicker", "hf_flicker", "style_loss",
              "content_loss", "resized_from"}
    for v in data["videos"]:
        assert fields <= set(v)
    assert data["videos"][1]["e_warp_ratio"] == 1.0
    assert data["videos"][2]["e_warp"] == pytest.approx(report.videos[2].e_warp)
    assert data["videos"][2]["style_loss"] is None


def test_json_writes_undefined_numbers_as_null_so_the_file_is_strict_json(clip, tmp_path):
    report = _score(clip, clip)
    report.videos[1].e_warp = math.nan           # what a clip whose mask keeps no pixel reports
    metrics_report.write_json(report, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert data["videos"][1]["e_warp"] is None


def test_csv_holds_one_row_per_pair_and_video_matching_the_curves(clip, tmp_path):
    report = _score(clip, clip, 255 - clip)
    out = tmp_path / "curves.csv"
    metrics_report.write_csv(report, out)
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == ("t", "video", "e_warp", "luminance_change", "hf_change")
    assert len(rows) == 3 * (T - 1)
    noisy_rows = [r for r in rows if r["video"] == "v1"]
    assert [int(r["t"]) for r in noisy_rows] == list(range(1, T))
    assert [float(r["e_warp"]) for r in noisy_rows] == pytest.approx(report.videos[2].e_warp_curve, rel=1e-5)
    assert [float(r["luminance_change"]) for r in noisy_rows] == pytest.approx(
        report.videos[2].luminance_change_curve, rel=1e-5, abs=1e-9)


def test_plot_writes_a_png(clip, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    metrics_report.plot_report(_score(clip, clip), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [out]        # no temporary file left behind


def test_plot_without_matplotlib_is_a_clear_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match="matplotlib"):
        metrics_report.require_matplotlib()


# --- fidelity (VGG-19) ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_frames() -> np.ndarray:
    return moving_square_clip(4, 48, 64, velocity=(2.0, 1.0))


def test_fidelity_is_zero_for_the_input_against_itself_and_worse_for_a_grey_video(small_frames):
    frame = small_frames[0]
    fidelity = metrics.Fidelity(frame, style_size=64, device="cpu")     # the style *is* the frame
    grey = np.full_like(frame, 128)
    (in_style, in_content), (same_style, same_content), (grey_style, grey_content) = fidelity.losses(
        frame, [frame, grey])
    assert in_content == 0.0 and same_content == 0.0
    assert grey_style > 0 and grey_content > 0
    # Gram matrices of one image in batches of different size agree to float rounding only.
    assert in_style < 1e-9 * grey_style and same_style < 1e-9 * grey_style


def test_fidelity_style_loss_prefers_frames_with_the_style_texture(small_frames):
    style = texture(64, 64, seed=7)
    fidelity = metrics.Fidelity(style, style_size=64, device="cpu")
    styled_frame = texture(48, 64, seed=7)
    (input_style, _), (styled_style, _) = fidelity.losses(small_frames[0], [styled_frame])
    assert styled_style < input_style


def test_fidelity_runs_on_every_nth_frame_and_reports_it(small_frames):
    fidelity = metrics.Fidelity(texture(64, 64, seed=7), style_size=64, device="cpu")
    report = evaluate(list(small_frames), [("same", list(small_frames))], fidelity=fidelity,
                      style_image="style.png", config=MetricsConfig(fidelity_every=3))
    assert report.fidelity_frames == 2            # frames 0 and 3
    same = report.videos[1]
    assert same.content_loss == 0.0
    assert same.style_loss == pytest.approx(report.videos[0].style_loss, rel=1e-5)
    table = metrics_report.format_table(report)
    assert "style loss" in table and "one frame in 3 (2 frames)" in table


# --- files and the command line -------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_files(clip, tmp_path_factory):
    """Lossless files: the input, an identical copy, a brightness-pumped copy, and one 2 frames short."""
    from tests.clips import write_test_clip

    folder = tmp_path_factory.mktemp("clips")
    return {name: str(write_test_clip(folder / f"{name}.mp4", frames, lossless=True))
            for name, frames in (("input", clip), ("same", clip), ("pumped", _pumped(clip)),
                                 ("short", clip[:-2]))}


def _cli(*argv):
    from vidstyle.cli import main

    return main(["metrics", *map(str, argv), "--quiet"])


def test_cli_prints_one_row_per_video_and_writes_json_csv_and_plot(clip_files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = {ext: tmp_path / f"m.{ext}" for ext in ("json", "csv", "png")}
    rc = _cli(clip_files["input"], clip_files["same"], clip_files["pumped"],
              "--json", out["json"], "--csv", out["csv"], "--plot", out["png"])
    assert rc == 0
    text = capsys.readouterr().out
    rows = {name: line for line in text.splitlines() for name in ("same", "pumped")
            if line.startswith(clip_files[name])}
    assert set(rows) == {"same", "pumped"}
    data = json.loads(out["json"].read_text())
    same, pumped = data["videos"][1:]
    assert same["e_warp_ratio"] == pytest.approx(1.0) and pumped["e_warp_ratio"] > 3.0
    assert pumped["luminance_flicker"] > 0.1
    assert len(out["csv"].read_text().splitlines()) == 1 + 3 * (T - 1)
    assert out["png"].stat().st_size > 1000


def test_cli_rejects_different_frame_counts_with_one_line_and_exit_2(clip_files, capsys):
    rc = _cli(clip_files["input"], clip_files["short"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert f"has {T}" in err and f"has {T - 2}" in err and f"--max-frames {T - 2}" in err


def test_max_frames_makes_different_lengths_comparable(clip_files):
    report = metrics.evaluate_videos(clip_files["input"], [clip_files["short"]], max_frames=T - 2)
    assert report.num_frames == T - 2
    assert report.videos[1].e_warp_ratio == pytest.approx(1.0)


def test_cli_plot_without_matplotlib_fails_before_any_work(clip_files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(metrics, "evaluate_videos", lambda *a, **k: pytest.fail("work started"))
    rc = _cli(clip_files["input"], clip_files["same"], "--plot", tmp_path / "m.png")
    assert rc == 2 and "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_cli_with_a_style_image_adds_style_and_content_columns(clip_files, tmp_path, capsys):
    from PIL import Image

    style = tmp_path / "style.png"
    Image.fromarray(texture(64, 64, seed=7)).save(style)
    rc = _cli(clip_files["input"], clip_files["same"], "--style", style, "--style-size", 64,
              "--fidelity-every", 4, "--json", tmp_path / "m.json")
    assert rc == 0
    assert "content loss" in capsys.readouterr().out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["fidelity"] == {"style_image": str(style), "style_size": 64, "every": 4, "frames": 2}
    inp, same = data["videos"]
    assert same["content_loss"] == 0.0 and same["style_loss"] == pytest.approx(inp["style_loss"], rel=1e-5)


def test_cli_unknown_flow_method_is_a_clear_error(clip_files, capsys):
    assert _cli(clip_files["input"], clip_files["same"], "--flow", "magic") == 2
    assert "unknown flow method 'magic'" in capsys.readouterr().err


# --- report paths are vetted before any work ----------------------------------------------------

@pytest.fixture
def own_copies(clip_files, tmp_path):
    """Private copies of the input and an identical stylized video (a failing test may overwrite them)."""
    import shutil

    return {name: shutil.copy(clip_files[name], tmp_path / f"{name}.mp4") for name in ("input", "same")}


def _no_work(monkeypatch):
    monkeypatch.setattr(metrics, "evaluate_videos", lambda *a, **k: pytest.fail("work started"))


@pytest.mark.parametrize("option", ["--json", "--csv", "--plot"])
@pytest.mark.parametrize("victim", ["input", "same"])
def test_cli_refuses_a_report_path_that_is_one_of_the_inputs(own_copies, option, victim, capsys, monkeypatch):
    _no_work(monkeypatch)
    before = open(own_copies[victim], "rb").read()
    rc = _cli(own_copies["input"], own_copies["same"], option, own_copies[victim])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "would overwrite an input" in err
    assert open(own_copies[victim], "rb").read() == before


def test_cli_refuses_a_report_path_that_is_a_symlink_to_an_input(own_copies, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    link = tmp_path / "report.csv"
    link.symlink_to(own_copies["same"])
    assert _cli(own_copies["input"], own_copies["same"], "--csv", link) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert link.is_symlink()


def test_cli_refuses_a_report_inside_an_input_frame_folder(clip, tmp_path, capsys, monkeypatch):
    from tests.clips import make_frame_folder

    _no_work(monkeypatch)
    folder = make_frame_folder(tmp_path / "frames", clip)
    assert _cli(folder, folder, "--plot", folder / "99999.png") == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert not (folder / "99999.png").exists()


def test_cli_report_in_a_missing_folder_fails_at_once_with_one_line(own_copies, tmp_path, capsys,
                                                                    monkeypatch):
    _no_work(monkeypatch)
    rc = _cli(own_copies["input"], own_copies["same"], "--json", tmp_path / "nodir" / "x.json")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "does not exist" in err


def test_cli_two_reports_to_one_path_are_refused(own_copies, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    out = tmp_path / "m.out"
    assert _cli(own_copies["input"], own_copies["same"], "--json", out, "--csv", out) == 2
    assert "both write" in capsys.readouterr().err
