"""Ground-truth flow, published definitions and long gaps, on clips whose motion is known exactly."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from tests.sintel_like import sintel_like, write_mask_folder, write_sintel_like
from vidstyle.errors import FlowFileError
from vidstyle.evaluate import consistency, definitions
from vidstyle.evaluate.consistency import ConsistencyConfig, evaluate_consistency
from vidstyle.evaluate.gtflow import GroundTruthFlow, chain
from vidstyle.io.flo import read_flo, write_flo

T, H, W = 8, 48, 64
ALL = tuple(definitions.DEFINITIONS)


@pytest.fixture(scope="module")
def scene():
    """frames (T, H, W, 3), forward flows (T-1, H, W, 2), occluded (T-1, H, W): exact by construction."""
    return sintel_like(T, H, W, velocity=(3, 2), background_velocity=(1, 0))


@pytest.fixture(scope="module")
def folders(scene, tmp_path_factory):
    return write_sintel_like(tmp_path_factory.mktemp("sintel"), *scene)


def _truth(folders, occlusions=True):
    return GroundTruthFlow(folders["flow"], folders["occlusions"] if occlusions else None)


def _score(frames, stylized, truth, defs=("vidstyle",), gaps=(1,)):
    return evaluate_consistency(list(frames), [("s", list(stylized))], truth=truth,
                                config=ConsistencyConfig(definitions=tuple(defs), gaps=tuple(gaps)))


def _noisy(frames, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(frames + rng.normal(0.0, sigma, frames.shape)), 0, 255).astype(np.uint8)


# --- .flo files -----------------------------------------------------------------------------------

def test_flo_round_trip_keeps_every_value_and_writes_the_middlebury_header(tmp_path):
    flow = np.random.default_rng(1).normal(0, 5, (5, 7, 2)).astype(np.float32)
    path = write_flo(tmp_path / "a.flo", flow)
    raw = path.read_bytes()
    assert raw[:4] == b"PIEH" and np.frombuffer(raw[4:12], "<i4").tolist() == [7, 5]
    assert len(raw) == 12 + 5 * 7 * 2 * 4
    assert np.array_equal(read_flo(path), flow)
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("spoil, message", [
    (lambda raw: raw[:8], "shorter than the 12-byte header"),
    (lambda raw: b"XXXX" + raw[4:], "header tag"),
    (lambda raw: raw[:4] + np.array([0, 5], "<i4").tobytes() + raw[12:], "impossible flow size"),
    (lambda raw: raw[:-4], "truncated"),
])
def test_malformed_flo_is_a_one_line_flow_file_error(tmp_path, spoil, message):
    good = write_flo(tmp_path / "a.flo", np.zeros((5, 7, 2), np.float32)).read_bytes()
    bad = tmp_path / "bad.flo"
    bad.write_bytes(spoil(good))
    with pytest.raises(FlowFileError, match=message) as info:
        read_flo(bad)
    assert "\n" not in str(info.value)


# --- ground-truth E_warp ----------------------------------------------------------------------------

@pytest.mark.parametrize("gap", [1, 3])
def test_clip_against_itself_scores_zero_under_every_definition(scene, folders, gap):
    frames = scene[0]
    report = _score(frames, frames, _truth(folders), ALL, (gap,))
    for video in report.videos:
        for score in video.scores.values():
            assert score.value == 0.0 and score.pairs == T - gap
    kept = report.videos[1].scores[("vidstyle", gap)].kept_fraction
    assert 0.5 < kept < 1.0          # occluded pixels and those leaving the frame are not kept


@pytest.mark.parametrize("gap", [1, 3])
def test_independent_noise_of_variance_s2_on_every_frame_scores_two_s2(scene, folders, gap):
    # Pixel values stay away from 0 and 255 so that clipping does not shrink the noise.
    frames = (64 + scene[0] // 2).astype(np.uint8)
    sigma = 12.0
    report = _score(frames, _noisy(frames, sigma), _truth(folders), gaps=(gap,))
    expected = 2 * (sigma / 255.0) ** 2 + 2 * (1 / 12) / 255.0 ** 2      # + rounding to whole levels
    assert report.videos[1].scores[("vidstyle", gap)].value == pytest.approx(expected, rel=0.02)


def test_occlusion_and_invalid_masks_drop_exactly_the_marked_pixels(tmp_path):
    frames = np.stack([np.full((16, 16, 3), 100, np.uint8)] * 3)
    flow_dir = tmp_path / "flow"
    flow_dir.mkdir()
    for n in (1, 2):
        write_flo(flow_dir / f"frame_{n:04d}.flo", np.zeros((16, 16, 2), np.float32))
    rng = np.random.default_rng(3)
    occluded = rng.random((2, 16, 16)) < 0.1
    invalid = rng.random((2, 16, 16)) < 0.1
    spoiled = frames.copy()
    for t in (0, 1):      # frame t+1 differs from frame t exactly where a mask marks frame t's pixel
        spoiled[t + 1] = spoiled[t]
        spoiled[t + 1][occluded[t] | invalid[t]] += 60
    occ_dir = write_mask_folder(tmp_path / "occ", occluded)
    inv_dir = write_mask_folder(tmp_path / "inv", invalid)
    masked = _score(frames, spoiled, GroundTruthFlow(flow_dir, occ_dir, inv_dir))
    score = masked.videos[1].scores[("vidstyle", 1)]
    assert score.value == 0.0
    dropped = (occluded | invalid).reshape(2, -1).sum(axis=1)
    assert score.kept_fraction == pytest.approx(np.mean(1 - dropped / 256))
    unmasked = _score(frames, spoiled, GroundTruthFlow(flow_dir, occ_dir))
    assert unmasked.videos[1].scores[("vidstyle", 1)].value > 0.0


def test_each_definition_matches_its_hand_computed_value_on_a_4x4_example(tmp_path):
    # Frame 0 black; frames 1 and 2 have R = 51/255 = 0.2 on the top row, whose first pixel is occluded
    # in pair 1. Zero flow: pair 1 has SSE = 3 * 0.2^2 = 0.12 over N = 15 of P = 16 pixels; pair 2 has 0.
    lit = np.zeros((4, 4, 3), np.uint8)
    lit[0, :, 0] = 51
    frames = np.stack([np.zeros_like(lit), lit, lit])
    flow_dir = tmp_path / "flow"
    flow_dir.mkdir()
    for n in (1, 2):
        write_flo(flow_dir / f"frame_{n:04d}.flo", np.zeros((4, 4, 2), np.float32))
    occluded = np.zeros((2, 4, 4), bool)
    occluded[0, 0, 0] = True
    truth = GroundTruthFlow(flow_dir, write_mask_folder(tmp_path / "occ", occluded))
    report = _score(frames, frames, truth, ALL)
    expected = {
        "vidstyle": (0.12 / 45 + 0) / 2,
        "lai2018": (0.12 / 45 + 0) / 2,
        "huang2017": math.sqrt((0.12 / 48 + 0) / 2),
        "reconet2018": math.sqrt((0.12 / 16 + 0) / 2),
        "wang2020": (math.sqrt(0.12 / 45) + 0) / 2,
    }
    for name, value in expected.items():
        assert report.videos[1].scores[(name, 1)].value == pytest.approx(value, rel=1e-6), name
    assert report.videos[1].scores[("vidstyle", 1)].kept_fraction == pytest.approx((15 / 16 + 1) / 2)


def test_chaining_constant_flows_adds_them_and_drops_paths_that_leave_the_frame():
    step = (np.tile(np.float32([1.0, 0.0]), (6, 8, 1)), np.zeros((6, 8), bool))
    flow, keep = chain([step] * 3)
    assert np.allclose(flow, [3.0, 0.0])
    assert keep[:, :5].all() and not keep[:, 5:].any()


def test_pairs_without_a_flo_file_are_skipped_and_counted(scene, folders, tmp_path):
    import shutil

    flow_dir = shutil.copytree(folders["flow"], tmp_path / "flow")
    (flow_dir / "frame_0004.flo").unlink()
    report = _score(scene[0], scene[0], GroundTruthFlow(flow_dir, folders["occlusions"]), gaps=(1, 2))
    assert report.videos[1].scores[("vidstyle", 1)].pairs == T - 2
    assert report.videos[1].scores[("vidstyle", 2)].pairs == T - 2 - 2
    assert report.unscored == {1: 1, 2: 2}


def test_a_flow_of_another_size_than_the_frames_is_a_clear_error(scene, folders):
    with pytest.raises(FlowFileError, match="but the frames are"):
        _score(scene[0][:, :-2], scene[0][:, :-2], _truth(folders))


# --- estimated flow -------------------------------------------------------------------------------

def test_default_definition_at_gap_1_is_exactly_the_default_e_warp(scene):
    from vidstyle.evaluate import metrics

    frames = scene[0]
    noisy = _noisy(frames, 6.0)
    old = metrics.evaluate(list(frames), [("s", list(noisy))])
    new = _score(frames, noisy, None)
    for a, b in zip(old.videos, new.videos):
        assert b.scores[("vidstyle", 1)].value == pytest.approx(a.e_warp, rel=1e-6)


def test_a_long_gap_reveals_slow_drift_that_one_frame_hides():
    from tests.synthetic import moving_square_clip

    frames = moving_square_clip(T, 64, 80, velocity=(1.0, 1.0))     # slow: estimated flow is good at K = 6
    drift = np.clip(frames.astype(np.int16) + 3 * np.arange(T)[:, None, None, None], 0, 255).astype(np.uint8)
    s = _score(frames, drift, None, gaps=(1, 6)).videos[1].scores
    # A uniform change of c levels per frame adds (cK/255)^2: 36x more at K = 6 than at K = 1.
    assert s[("vidstyle", 6)].value > 10 * s[("vidstyle", 1)].value
    assert s[("vidstyle", 6)].value == pytest.approx((3 * 6 / 255) ** 2, rel=0.1)
    assert s[("vidstyle", 1)].pairs == T - 1 and s[("vidstyle", 6)].pairs == T - 6


# --- the command line -----------------------------------------------------------------------------

def _cli(*argv):
    from vidstyle.cli import main

    return main(["metrics", *map(str, argv), "--quiet"])


def test_cli_scores_sintel_folders_under_two_definitions_and_gaps(scene, folders, tmp_path, capsys):
    from tests.clips import make_frame_folder

    styled = make_frame_folder(tmp_path / "styled", _noisy(scene[0], 8.0), pattern="frame_{:04d}.png",
                               start=1)
    out_json, out_csv = tmp_path / "m.json", tmp_path / "m.csv"
    rc = _cli(folders["clean"], styled, "--gt-flow", folders["flow"],
              "--gt-occlusions", folders["occlusions"], "--definition", "vidstyle", "huang2017",
              "--gap", 1, 3, "--json", out_json, "--csv", out_csv)
    assert rc == 0
    text = capsys.readouterr().out
    assert "huang2017 K=3" in text and "ground truth" in text
    data = json.loads(out_json.read_text())
    assert data["format"] == "vidstyle-consistency/1" and data["flow"]["source"] == "ground truth"
    inp, sty = data["videos"]
    assert all(s["value"] == 0.0 for s in inp["scores"])
    values = {(s["definition"], s["gap"]): s["value"] for s in sty["scores"]}
    assert set(values) == {("vidstyle", 1), ("vidstyle", 3), ("huang2017", 1), ("huang2017", 3)}
    assert values[("vidstyle", 1)] == pytest.approx(2 * (8 / 255) ** 2, rel=0.1)
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * ((T - 1) + (T - 3))
    assert {r["gap"] for r in rows} == {"1", "3"}


def test_cli_malformed_flo_exits_2_with_one_line(scene, folders, tmp_path, capsys):
    import shutil

    flow_dir = shutil.copytree(folders["flow"], tmp_path / "flow")
    (flow_dir / "frame_0002.flo").write_bytes(b"not a flow file at all")
    rc = _cli(folders["clean"], folders["clean"], "--gt-flow", flow_dir)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "frame_0002.flo is not a .flo file" in err


def test_cli_gt_occlusions_without_gt_flow_and_style_with_definitions_are_refused(folders, capsys):
    assert _cli(folders["clean"], folders["clean"], "--gt-occlusions", folders["occlusions"]) == 2
    assert "go with --gt-flow" in capsys.readouterr().err
    assert _cli(folders["clean"], folders["clean"], "--gap", 2, "--style", "x.png") == 2
    assert "--style and --plot" in capsys.readouterr().err


def test_cli_definition_names_are_the_library_ones():
    from vidstyle.cli.metrics import DEFINITION_NAMES

    assert set(DEFINITION_NAMES) == set(definitions.DEFINITIONS)
    assert consistency.ConsistencyConfig().definitions == (definitions.DEFAULT_DEFINITION,)


def test_masks_in_a_folder_whose_name_is_not_utf8_are_read(tmp_path):
    """OpenCV's imread crashes the process on such a name; the masks are decoded from bytes."""
    import os

    frames = np.stack([np.full((8, 8, 3), 100, np.uint8)] * 2)
    flow_dir = tmp_path / "flow"
    flow_dir.mkdir()
    write_flo(flow_dir / "frame_0001.flo", np.zeros((8, 8, 2), np.float32))
    occluded = np.zeros((1, 8, 8), bool)
    occluded[0, :2] = True
    spoiled = frames.copy()
    spoiled[1][occluded[0]] += 60
    occ_dir = write_mask_folder(tmp_path / "occ", occluded).rename(tmp_path / os.fsdecode(b"occ\xe9"))
    score = _score(frames, spoiled, GroundTruthFlow(flow_dir, occ_dir)).videos[1].scores[("vidstyle", 1)]
    assert score.value == 0.0 and score.kept_fraction == pytest.approx(0.75)
