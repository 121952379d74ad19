"""One style name, two networks: which one runs (device, card, --quality), and what a run reports."""

import json

import pytest
import torch

from tests.clips import distinct_frames, write_test_clip
from tests.testmodel import run_cli
from vidstyle.errors import ConfigError
from vidstyle.infer.engines import StylizerPool
from vidstyle.infer.inferconfig import EngineConfig
from vidstyle.models.lazymodel import open_model
from vidstyle.models.looks import choose, keeps_the_look, looks
from vidstyle.models.net import build_net
from vidstyle.models.zoo import ModelCard, save_model

KEEPS = {"style_ratio": 0.30, "style_ratio_full": 0.29, "ewarp_ratio": 1.9, "ewarp_ratio_full": 1.8}
LOSES = {"style_ratio": 0.40, "style_ratio_full": 0.29, "ewarp_ratio": 1.5, "ewarp_ratio_full": 1.8}


def _save(folder, name, net_name, teacher=None, check=None):
    torch.manual_seed(0)
    net = build_net(net_name, **({"channels": (4, 8, 8), "res_blocks": 1} if net_name == "huang" else {}))
    trained = {"distilled": {"teacher": teacher}} if teacher else {}
    card = ModelCard(name, net.config, style_image="s.jpg", description=f"{name}. More words.",
                     trained=trained, metrics={"fast_check": check} if check else {})
    return save_model(net, folder / f"{name}.safetensors", card)


@pytest.fixture
def zoo(tmp_path):
    """A models folder with a look that has a fast network (``keeps`` by its card), one without."""
    def make(check):
        folder = tmp_path / "models"
        folder.mkdir(exist_ok=True)
        _save(folder, "ink", "huang")
        _save(folder, "ink_lite", "lite", teacher="ink", check=check)
        _save(folder, "plain", "huang")
        return {"runs_dir": None, "weights_dir": tmp_path / "empty", "env": {"VIDSTYLE_MODELS": str(folder)}}
    return make


def test_the_margins_of_keeping_the_look():
    def card(check):
        return ModelCard("x_lite", {"name": "lite"}, metrics={"fast_check": check})
    assert keeps_the_look(card(KEEPS))
    assert not keeps_the_look(card(LOSES))
    assert not keeps_the_look(card({**KEEPS, "ewarp_ratio": 2.1}))      # 1.17x the full model's
    assert not keeps_the_look(card({"style_ratio": "n/a"}))
    assert not keeps_the_look(ModelCard("x", {"name": "lite"}))


def test_auto_runs_the_fast_network_on_a_cpu_only_when_its_card_keeps_the_look(zoo):
    assert choose("ink", "auto", "cpu", **zoo(KEEPS)).entry.name == "ink_lite"
    assert choose("ink", "auto", "cpu", **zoo(LOSES)).entry.name == "ink"
    assert choose("ink", "auto", "cpu", **zoo(None)).entry.name == "ink"


def test_auto_runs_the_full_network_on_a_gpu(zoo):
    choice = choose("ink", "auto", "cuda", **zoo(KEEPS))
    assert choice.entry.name == "ink" and not choice.fast and choice.look == "ink"


def test_quality_overrides_the_card_and_the_device(zoo):
    folders = zoo(LOSES)
    assert choose("ink", "fast", "cuda", **folders).entry.name == "ink_lite"
    assert choose("ink", "full", "cpu", **zoo(KEEPS)).entry.name == "ink"
    assert choose("ink_lite", "full", "cpu", **folders).entry.name == "ink"
    assert choose("plain", "fast", "cpu", **folders).entry.name == "plain"     # no fast network


def test_a_fast_network_named_directly_runs_as_named_and_names_its_outputs(zoo):
    choice = choose("ink_lite", "auto", "cuda", **zoo(LOSES))
    assert choice.entry.name == "ink_lite" and choice.look == "ink_lite" and choice.fast


def test_an_unknown_quality_is_a_config_error(zoo):
    with pytest.raises(ConfigError, match="quality"):
        choose("ink", "best", "cpu", **zoo(KEEPS))


def test_a_model_whose_card_cannot_be_read_is_listed_as_unusable_beside_the_others(zoo, tmp_path):
    folders = zoo(KEEPS)
    (tmp_path / "models" / "plain.json").write_text("{not json")
    records = {r["name"]: r for r in looks(**folders)}
    assert sorted(records) == ["ink", "plain"]
    assert records["plain"]["networks"] == [] and "unusable" in records["plain"]["description"]


def test_looks_lists_each_style_once_with_its_networks(zoo):
    records = {r["name"]: r for r in looks(**zoo(KEEPS))}
    assert sorted(records) == ["ink", "plain"]
    ink = records["ink"]["networks"]
    assert [(n["model"], n["role"], n["keeps_look"]) for n in ink] == [
        ("ink", "full", None), ("ink_lite", "fast", True)]
    assert records["ink"]["description"] == "ink"


def test_open_model_names_outputs_by_the_look_and_reports_the_network(zoo):
    model = open_model("ink", quality="auto", device="cpu", **zoo(KEEPS))
    assert (model.look, model.name, model.network) == ("ink", "ink_lite", "lite")


def test_infer_json_and_summary_name_the_network_and_backend(tmp_path, capsys, zoo, monkeypatch):
    folders = zoo(KEEPS)
    monkeypatch.setenv("VIDSTYLE_MODELS", folders["env"]["VIDSTYLE_MODELS"])
    monkeypatch.chdir(tmp_path)
    clip = write_test_clip(tmp_path / "c.mp4", distinct_frames(3))
    code, out, _ = run_cli(capsys, "infer", clip, "--model", "ink", "--json", "--backend", "torch")
    report = json.loads(out)
    assert code == 0 and report["model"] == "ink"
    assert report["network"] == {"model": "ink_lite", "net": "lite", "quality": "auto"}
    result = report["results"][0]
    assert (result["model"], result["network"], result["backend"]) == ("ink_lite", "lite", "torch")
    assert result["output"].endswith("c.ink.mp4")
    code, out, _ = run_cli(capsys, "infer", clip, "--model", "ink", "--quality", "full", "-o", "full.mp4",
                           "--backend", "torch")
    assert code == 0 and "model ink (huang network)" in out and "torch" in out


def test_the_export_notice_comes_once_for_the_first_export(tmp_path, monkeypatch, zoo):
    monkeypatch.setenv("VIDSTYLE_CACHE", str(tmp_path / "cache"))
    notes: list[str] = []
    model = open_model("ink", quality="full", device="cpu", **zoo(KEEPS))
    pool = StylizerPool(model, EngineConfig(device="cpu", backend="onnx", threads=1), notify=notes.append)
    pool.get(100)
    pool.get(100)
    again = StylizerPool(model, EngineConfig(device="cpu", backend="onnx", threads=1), notify=notes.append)
    again.get(100)
    assert len(notes) == 1 and "exporting ink" in notes[0] and "once" in notes[0]


def test_an_unchecked_student_in_the_users_runs_leaves_the_checked_fast_network_in_place(tmp_path):
    shipped, runs = tmp_path / "weights", tmp_path / "runs" / "my_student"
    shipped.mkdir()
    runs.mkdir(parents=True)
    _save(shipped, "ink", "huang")
    _save(shipped, "ink_lite", "lite", teacher="ink", check=KEEPS)
    _save(runs, "my_student", "lite", teacher="ink")  # `vidstyle distill ink --name my_student`: unchecked
    folders = {"runs_dir": tmp_path / "runs", "weights_dir": shipped, "env": {}}     # runs come first
    assert choose("ink", "auto", "cpu", **folders).entry.name == "ink_lite"
    assert choose("ink", "fast", "cpu", **folders).entry.name == "ink_lite"
    assert choose("my_student", "auto", "cpu", **folders).entry.name == "my_student"   # named: runs
    networks = next(r for r in looks(**folders) if r["name"] == "ink")["networks"]
    assert {n["model"] for n in networks} == {"ink", "ink_lite", "my_student"}
