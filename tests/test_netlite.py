"""The lite network: same contract as huang (any size, [0, 1], tone gate), a fraction of its cost, and
it goes through the model zoo and the ONNX export like the others."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from vidstyle.errors import ModelError
from vidstyle.models.net import build_net, is_stylizing_net
from vidstyle.models.zoo import ModelCard, load_model, net_config_from_shapes, save_model


def multiply_adds(net: nn.Module, height: int, width: int) -> int:
    """Multiply-adds of every convolution of ``net`` on one (3, height, width) frame."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * (module.in_channels // module.groups) * k

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        net(torch.rand(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return total


def test_lite_costs_under_a_quarter_of_huang_at_640x360():
    lite, huang = multiply_adds(build_net("lite"), 360, 640), multiply_adds(build_net("huang"), 360, 640)
    assert lite < huang / 4
    assert is_stylizing_net(build_net("lite")) and not is_stylizing_net(nn.Conv2d(3, 3, 1))


@pytest.mark.parametrize("height, width", [(37, 53), (8, 8), (5, 7), (64, 48)])
def test_lite_keeps_the_size_and_range_of_any_frame(height, width):
    torch.manual_seed(0)
    net = build_net("lite").eval()
    with torch.inference_mode():
        y = net(torch.rand(2, 3, height, width))
    assert y.shape == (2, 3, height, width)
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_lite_tone_gate_turns_black_input_black():
    torch.manual_seed(0)
    gated, plain = build_net("lite", tone=0.25).eval(), build_net("lite").eval()
    plain.load_state_dict(gated.state_dict())
    black = torch.zeros(1, 3, 40, 56)
    with torch.inference_mode():
        assert float(gated(black).max()) == 0.0
        assert float(plain(black).mean()) > 0.05    # without the gate, black comes out grey
    assert gated.config["tone"] == 0.25 and "tone" not in plain.config


def test_lite_model_file_round_trips_and_its_shapes_give_its_config(tmp_path):
    torch.manual_seed(1)
    net = build_net("lite", channels=(4, 8, 16), res_blocks=2, tone=0.25)
    card = ModelCard("fast", net.config, description="test")
    path = save_model(net, tmp_path / "fast.safetensors", card)
    loaded = load_model(path)
    assert loaded.card.net == net.config
    x = torch.rand(1, 3, 30, 42)
    with torch.inference_mode():
        assert torch.allclose(loaded.net(x), net.eval()(x), atol=1e-6)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    assert net_config_from_shapes(shapes) == {"channels": [4, 8, 16], "res_blocks": 2}


def test_a_card_naming_huang_over_lite_weights_is_refused(tmp_path):
    net = build_net("lite")
    with pytest.raises(ModelError, match="does not hold the weights of its network"):
        save_model(net, tmp_path / "wrong.safetensors", ModelCard("wrong", {"name": "huang"}))
    path = save_model(net, tmp_path / "edited.safetensors", ModelCard("edited", net.config))
    card = json.loads(path.with_suffix(".json").read_text())
    card["net"] = {"name": "huang"}                 # a card edited by hand to name another network
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="the model card asks for"):
        load_model(path)


def test_lite_option_unknown_to_it_is_refused():
    with pytest.raises(ModelError, match="no option"):
        build_net("lite", end_kernel=3)


@pytest.mark.parametrize("batch, height, width", [(2, 241, 333), (1, 9, 13)])
def test_lite_export_matches_pytorch(tmp_path, batch, height, width):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from vidstyle.models.backends import OnnxRunner
    from vidstyle.models.export import export_onnx

    torch.manual_seed(3)
    net = build_net("lite", tone=0.25).eval()
    path = export_onnx(net, tmp_path / "lite.onnx")
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
    with torch.inference_mode():
        expected = net(x).numpy()
    got = OnnxRunner(path, threads=1)(x.numpy())
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize("net_name, expected", [("lite", "onnx"), ("huang", "torch")])
def test_infer_auto_keeps_a_lite_model_on_onnx_where_huang_goes_to_torch(tmp_path, capsys, monkeypatch,
                                                                        net_name, expected):
    pytest.importorskip("onnxruntime")
    from tests.clips import distinct_frames, write_test_clip
    from vidstyle.cli import main
    from vidstyle.models import backends

    monkeypatch.setattr(backends, "ONNX_MAX_PIXELS", 1)          # every job counts as long here
    monkeypatch.setenv("VIDSTYLE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = build_net(net_name, channels=(4, 8, 8), res_blocks=1)
    model = save_model(net, tmp_path / f"{net_name}.safetensors", ModelCard(net_name, net.config))
    clip = write_test_clip(tmp_path / "in.mp4", distinct_frames(4, width=40, height=32), fps=10)
    code = main(["infer", str(clip), "--model", str(model), "-o", str(tmp_path / "out.mp4"), "--json",
                 "-q", "--device", "cpu", "--threads", "1"])
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert code == 0 and result["status"] == "ok" and result["frames"] == 4
    assert result["backend"] == expected
