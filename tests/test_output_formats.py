"""Video outputs by suffix: .webm is VP9 with Opus sound; every container says what made it."""

import av
import numpy as np
import pytest

from tests.clips import distinct_frames, write_test_clip
from tests.testmodel import run_cli
from vidstyle.io.encode import _audio_rate, read_made_by, write_video
from vidstyle.io.video import iter_frames, probe


@pytest.fixture(scope="module")
def frames():
    return distinct_frames(12, width=64, height=48)


def test_webm_output_is_vp9_with_the_sources_sound_as_opus(capsys, tmp_path, frames, model):
    clip = write_test_clip(tmp_path / "in.mp4", frames, fps=12, audio=True)     # AAC
    out = tmp_path / "web.webm"
    code, _, err = run_cli(capsys, "infer", clip, "--model", model, "-o", out, "--backend", "torch")
    assert code == 0, err
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
        (sound,) = container.streams.audio
        assert (sound.codec_context.name, sound.rate) == ("opus", 48000)
    info = probe(out)
    assert (info.num_frames, info.size, info.fps) == (12, (64, 48), 12)
    assert read_made_by(out)["network"] == "huang"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "web.webm"]


def test_webm_keeps_the_picture_about_as_well_as_mp4(tmp_path, frames):
    errors = {}
    for suffix in (".mp4", ".webm"):
        write_video(tmp_path / f"o{suffix}", frames, 12, preset="veryfast")
        decoded = np.stack(list(iter_frames(tmp_path / f"o{suffix}")))
        errors[suffix] = np.abs(decoded.astype(int) - frames).mean()
    assert errors[".webm"] < 2 * errors[".mp4"] + 0.5, errors


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mov"])
def test_every_container_says_what_made_it(capsys, tmp_path, frames, model, suffix):
    clip = write_test_clip(tmp_path / "in.mp4", frames[:4])
    out = tmp_path / f"out{suffix}"
    code, _, err = run_cli(capsys, "infer", clip, "--model", model, "-o", out, "--backend", "torch")
    assert code == 0, err
    assert read_made_by(out)["backend"] == "torch"


def test_sound_is_resampled_only_where_the_encoder_asks():
    assert _audio_rate("libopus", 44100) == 48000 and _audio_rate("libopus", 16000) == 16000
    assert _audio_rate("aac", 44100) == 44100 and _audio_rate("libopus", None) == 48000
