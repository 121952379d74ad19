"""A stylized video says what made it, and `vidstyle metrics` reports it."""

import json

from tests.clips import distinct_frames, write_test_clip
from tests.testmodel import run_cli
from vidstyle.cli import main
from vidstyle.io.encode import read_made_by


def test_metrics_json_names_the_model_network_and_backend_of_each_stylized_video(capsys, tmp_path, model):
    clip = write_test_clip(tmp_path / "in.mp4", distinct_frames(4))
    out = tmp_path / "in.styled.mp4"
    code, _, err = run_cli(capsys, "infer", clip, "--model", model, "-o", out, "--backend", "torch")
    assert code == 0, err
    assert read_made_by(out) == {"model": model.stem, "model_file": model.stem, "network": "huang",
                                 "backend": "torch", "vidstyle": read_made_by(out)["vidstyle"]}
    report = tmp_path / "m.json"
    assert main(["metrics", str(clip), str(out), str(clip), "--json", str(report), "--quiet"]) == 0
    videos = json.loads(report.read_text())["videos"]
    assert videos[0]["made_by"] is None                       # the input
    assert videos[1]["made_by"]["network"] == "huang" and videos[1]["made_by"]["backend"] == "torch"
    assert videos[2]["made_by"] is None                       # a file vidstyle did not stylize
