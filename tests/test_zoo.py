"""The model zoo: safetensors round trips, lookup of shipped / user / path models, bad model files."""

import hashlib
import json
import re

import pytest
import torch
from safetensors.torch import save_file

from vidstyle.errors import ModelError
from vidstyle.models import zoo
from vidstyle.models.looks import describe
from vidstyle.models.net import build_net
from vidstyle.models.zoo import CARD_KEY, ModelCard, find_model, list_models, load_model, save_model


def _net(name="huang", seed=0):
    torch.manual_seed(seed)
    net = build_net(name)
    with torch.no_grad():  # untrained instance norms start at weight 1, bias 0: make them distinct
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


def _save(folder, name, net=None, **card):
    net = net or _net()
    return save_model(net, folder / f"{name}.safetensors",
                      ModelCard(name=name, net=net.config, **card))


@pytest.fixture
def folders(tmp_path):
    """Shipped, runs/ and $VIDSTYLE_MODELS folders, all empty, as keyword arguments for the zoo."""
    shipped, runs, extra = tmp_path / "weights", tmp_path / "runs", tmp_path / "mine"
    for folder in (shipped, runs, extra):
        folder.mkdir()
    return dict(weights_dir=shipped, runs_dir=runs, env={"VIDSTYLE_MODELS": str(extra)})


def test_saved_model_loads_with_identical_tensors_and_output(tmp_path):
    net = _net()
    path = _save(tmp_path, "round", net, style_image="s.jpg", description="d",
                 trained={"steps": 3}, metrics={"style_loss": 1.5})
    loaded = load_model(path)
    for key, tensor in net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], tensor), key
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(loaded.net(x), net.eval()(x))
    assert loaded.card.metrics == {"style_loss": 1.5} and loaded.card.trained == {"steps": 3}
    assert json.loads(path.with_suffix(".json").read_text())["net"] == net.config
    assert not loaded.net.training and not any(p.requires_grad for p in loaded.net.parameters())


def test_fp16_file_is_half_the_size_and_loads_as_fp32_close_to_original(tmp_path):
    net = _net()
    full = save_model(net, tmp_path / "a.safetensors", ModelCard("a", net.config))
    half = save_model(net, tmp_path / "b.safetensors", ModelCard("b", net.config), dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half).net
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for key, tensor in net.state_dict().items():
        assert torch.allclose(loaded.state_dict()[key], tensor, rtol=1e-3, atol=1e-4), key


def test_lone_safetensors_file_loads_from_the_card_in_its_header(tmp_path):
    net = _net("johnson")
    path = _save(tmp_path, "lone", net)
    path.with_suffix(".json").unlink()
    loaded = load_model(path)
    assert loaded.card.net_name == "johnson" and loaded.card.name == "lone"


def test_zoo_finds_shipped_user_run_and_env_models(folders):
    _save(folders["weights_dir"], "shipped_one")
    run = folders["runs_dir"] / "my_run"
    run.mkdir()
    _save(run, "my_run")
    _save(folders["runs_dir"].parent / "mine", "from_env")
    found = {e.name: e.source for e in list_models(**folders)}
    assert found == {"shipped_one": "shipped", "my_run": "user", "from_env": "user"}
    assert find_model("my_run", **folders).weights == run / "my_run.safetensors"
    assert load_model("shipped_one", **folders).entry.source == "shipped"


def test_run_folder_ignores_checkpoints_not_named_after_the_run(folders):
    run = folders["runs_dir"] / "exp"
    run.mkdir()
    _save(run, "exp")
    _save(run, "step_1000")
    assert [e.name for e in list_models(**folders)] == ["exp"]


def test_user_model_shadows_shipped_model_of_the_same_name(folders):
    _save(folders["weights_dir"], "starwars_blue", description="shipped")
    _save(folders["runs_dir"].parent / "mine", "starwars_blue", description="retrained")
    assert load_model("starwars_blue", **folders).card.description == "retrained"
    both = list_models(include_shadowed=True, **folders)
    assert [e.source for e in both] == ["user", "shipped"]


def test_model_given_by_path_or_run_folder(tmp_path):
    path = _save(tmp_path / "run7", "run7")
    assert find_model(str(path)).source == "path"
    assert find_model(str(tmp_path / "run7")).weights == path


def test_unknown_name_error_lists_the_known_names(folders):
    _save(folders["weights_dir"], "alpha")
    _save(folders["weights_dir"], "beta")
    with pytest.raises(ModelError, match=r"unknown model 'gamma'.*alpha, beta"):
        find_model("gamma", **folders)


def test_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "nope.safetensors"))


def test_pickle_checkpoints_are_refused_without_being_opened(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"anything")
    with pytest.raises(ModelError, match="pickle"):
        load_model(str(path))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_safetensors_file_is_a_model_error(tmp_path, damage):
    path = _save(tmp_path, "bad")
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 50 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ModelError, match="bad.safetensors"):
        load_model(path)


def test_foreign_safetensors_file_is_a_model_error(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"embedding.weight": torch.zeros(10, 4)}, str(path),
              metadata={CARD_KEY: json.dumps({"name": "foreign", "net": {"name": "huang"}})})
    with pytest.raises(ModelError, match="missing"):
        load_model(path)


def test_weights_of_another_network_than_the_card_says_are_refused(tmp_path):
    path = _save(tmp_path, "mixed", _net("huang"))
    card = json.loads(path.with_suffix(".json").read_text())
    card["net"] = build_net("johnson").config
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="shape"):
        load_model(path)


def test_non_finite_weights_are_refused(tmp_path):
    net = _net()
    with torch.no_grad():
        next(net.parameters())[0] = float("nan")
    with pytest.raises(ModelError, match="finite"):
        load_model(_save(tmp_path, "nan", net))


def test_file_without_any_card_is_a_model_error(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file(dict(_net().state_dict()), str(path))
    with pytest.raises(ModelError, match="no model card"):
        load_model(path)


def test_card_naming_an_unknown_network_is_a_model_error(tmp_path):
    path = _save(tmp_path, "odd")
    path.with_suffix(".json").write_text(json.dumps({"name": "odd", "net": {"name": "resnet9000"}}))
    with pytest.raises(ModelError, match="resnet9000"):
        load_model(path)


def test_saving_weights_that_do_not_fit_the_card_fails_before_writing(tmp_path):
    wrapped = torch.nn.Sequential(_net())   # names gain a "0." prefix, as DDP adds "module."
    card = ModelCard("wrapped", _net().config)
    with pytest.raises(ModelError, match="missing"):
        save_model(wrapped, tmp_path / "wrapped.safetensors", card)
    assert list(tmp_path.iterdir()) == []


def test_model_names_with_path_characters_cannot_be_saved(tmp_path):
    net = _net()
    with pytest.raises(ModelError, match="name"):
        save_model(net, tmp_path / "x.safetensors", ModelCard("../x", net.config))


def test_describe_lists_unusable_models_with_the_reason(folders):
    _save(folders["weights_dir"], "good", description="fine")
    (folders["weights_dir"] / "broken.safetensors").write_bytes(b"junk")
    rows = {r["name"]: r for r in describe(list_models(**folders))}
    assert rows["good"]["description"] == "fine" and rows["good"]["net"] == "huang"
    assert rows["broken"]["description"].startswith("(unusable:")


def _header_card_only(path, **net_changes):
    """Rewrite ``path`` with its card's net changed, the card in its header only (no JSON beside)."""
    card = json.loads(path.with_suffix(".json").read_text())
    card["net"].update(net_changes)
    path.with_suffix(".json").unlink()
    loaded = load_model(path)   # the file as saved, before the card lies about it
    save_file({k: v.contiguous() for k, v in loaded.net.state_dict().items()}, str(path),
              metadata={CARD_KEY: json.dumps(card)})


@pytest.mark.parametrize("net_changes, named", [({"res_blocks": 200000}, "res_blocks=200000"),
                                                ({"channels": [16, 32, 200000]}, "channels"),
                                                ({"end_kernel": 9}, "end_kernel")])
def test_card_asking_for_another_network_is_refused_before_anything_is_built(
        tmp_path, monkeypatch, net_changes, named):
    path = _save(tmp_path, "liar")
    _header_card_only(path, **net_changes)

    def build_net_must_not_run(*args, **kwargs):
        raise AssertionError("a network was built from an unchecked card")

    monkeypatch.setattr("vidstyle.models.net.build_net", build_net_must_not_run)
    with pytest.raises(ModelError, match=named) as caught:
        load_model(path)
    assert "\n" not in str(caught.value) and "shape" in str(caught.value)


@pytest.mark.parametrize("config", [{"name": "huang"}, {"name": "johnson"},
                                    {"name": "huang", "channels": [8, 12, 20], "res_blocks": 2,
                                     "end_kernel": 5}])
def test_config_read_from_tensor_shapes_is_the_config_the_net_was_built_with(config):
    from vidstyle.models.zoo import net_config_from_shapes

    net = build_net(**config)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {"name": config["name"], **net_config_from_shapes(shapes)} == net.config


def test_weights_beyond_float16_range_are_not_saved_as_float16_and_nothing_is_written(tmp_path):
    net = _net()
    with torch.no_grad():
        next(net.parameters())[0] = 1e6
    with pytest.raises(ModelError, match=r"reaches 1e\+06, beyond the range of float16") as caught:
        save_model(net, tmp_path / "big.safetensors", ModelCard("big", net.config), dtype=torch.float16)
    assert "corrupt" not in str(caught.value) and list(tmp_path.iterdir()) == []
    assert save_model(net, tmp_path / "big.safetensors", ModelCard("big", net.config)).is_file()


def test_unknown_name_suggests_close_names_case_insensitively(folders):
    for name in ("starwars_blue", "starwars_red", "the_wave"):
        _save(folders["weights_dir"], name)
    cases = {"Starwars_Blue": "'starwars_blue'", "starwars-blue": "'starwars_blue'",
             "the-wave": "'the_wave'", "starwars": "'starwars_blue' or 'starwars_red'"}
    for spec, suggestion in cases.items():
        with pytest.raises(ModelError, match=f"did you mean {suggestion}\\?") as caught:
            find_model(spec, **folders)
        assert "known models: starwars_blue, starwars_red, the_wave" in str(caught.value)
    with pytest.raises(ModelError) as caught:
        find_model("mosaic", **folders)
    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize("spec", ["starry.jpg", "styles/starry.JPG", "poster.png"])
def test_style_image_given_as_model_says_how_to_train_on_it(tmp_path, spec):
    with pytest.raises(ModelError, match=r"that is an image: train a model on it with "
                                         r"train_temporal.py --style "):
        find_model(spec)


def test_other_files_and_unfinished_runs_get_their_own_message(folders, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    for spec in (str(notes), "clip.mp4", "flows/a.h5", "net.onnx"):
        with pytest.raises(ModelError, match="not a model file"):
            find_model(spec, **folders)
    run = folders["runs_dir"] / "halfway"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    for spec in ("halfway", str(run)):
        with pytest.raises(ModelError, match="has not finished.*--name halfway --resume"):
            find_model(spec, **folders)
    with pytest.raises(ModelError, match="empty"):
        find_model("", **folders)


@pytest.mark.parametrize("card_text, message", [
    ("{not json", "unreadable model card"),
    ("[1, 2]", "not a JSON object"),
    ('{"net": {"name": "huang"}, "description": 5}', '"description"'),
    ('{"description": "no net"}', "lacks"),
])
def test_malformed_card_beside_the_weights_is_a_one_line_model_error(tmp_path, card_text, message):
    path = _save(tmp_path, "m")
    path.with_suffix(".json").write_text(card_text)
    with pytest.raises(ModelError, match=message) as caught:
        load_model(path)
    assert "\n" not in str(caught.value)


def test_models_json_lists_every_model_with_its_card_fields(folders, monkeypatch, capsys):
    from vidstyle.cli import main

    _save(folders["weights_dir"], "good", style_image="poster_blue.jpg", trained={"steps": 7})
    (folders["weights_dir"] / "broken.safetensors").write_bytes(b"junk")
    real_folders = zoo.model_folders
    monkeypatch.setattr(zoo, "model_folders", lambda **kw: real_folders(**{**folders, **kw}))
    assert main(["models", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(records) == {"good", "broken"}
    good = records["good"]
    assert good["error"] is None and good["source"] == "shipped" and good["net"]["name"] == "huang"
    assert good["style_image"] == "poster_blue.jpg" and good["trained"] == {"steps": 7}
    assert records["broken"]["error"] and "net" not in records["broken"]


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_shipped_cards_name_no_machine_paths_and_their_style_images_are_shipped_and_credited():
    from pathlib import Path

    import cv2
    from safetensors import safe_open

    styles = Path(__file__).resolve().parents[1] / "data" / "styles"
    credits = (styles / "CREDITS.md").read_text()
    shipped = sorted(zoo.WEIGHTS_DIR.glob("*.json"))
    assert len(shipped) >= 7
    for path in shipped:
        card = json.loads(path.read_text())
        for text in _strings(card):
            assert not re.search(r"(^|[\s\"'(])(/|~/|[A-Za-z]:\\)\w", text), (path.name, text)
        assert not re.search(r"\blent\b|\bsession\b", card["description"]), path.name
        image = styles / card["style_image"]
        assert Path(card["style_image"]).name == card["style_image"] and image.is_file(), path.name
        assert hashlib.sha256(image.read_bytes()).hexdigest() == card["trained"]["style_sha256"]
        assert f"`{card['style_image']}`" in credits and max(cv2.imread(str(image)).shape[:2]) <= 1024
        # The hardware in words, and the description says which kind it was.
        hardware = card["trained"]["hardware"]
        kind = "CPU" if "CPU" in hardware else "GPU"
        assert kind in card["description"] and (kind == "CPU" or "NVIDIA" in hardware), path.name
        with safe_open(str(path.with_suffix(".safetensors")), framework="pt") as f:
            assert json.loads(f.metadata()[CARD_KEY]) == card, path.name


def test_each_shipped_fast_network_keeps_its_full_models_look_and_tone_gate():
    # A style's two networks must look alike on any footage: the fast one runs by default on a CPU only
    # if its recorded check keeps the look, and with another tone gate dark scenes would differ.
    from vidstyle.models.looks import keeps_the_look, teacher_of

    cards = {path.stem: ModelCard(**json.loads(path.read_text())) for path in zoo.WEIGHTS_DIR.glob("*.json")}
    fast = {name: card for name, card in cards.items() if teacher_of(card)}
    assert len(fast) >= 7
    for name, card in fast.items():
        teacher = cards[teacher_of(card)]
        assert teacher_of(teacher) is None, name
        assert card.net.get("tone", 0.0) == teacher.net.get("tone", 0.0), name
        assert keeps_the_look(card), name
