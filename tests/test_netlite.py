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


@pytest.mark.parametrize("name", ["lite", "lite2"])
@pytest.mark.parametrize("batch, height, width", [(2, 241, 333), (1, 9, 13)])
def test_lite_export_matches_pytorch(tmp_path, name, batch, height, width):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from vidstyle.models.backends import OnnxRunner
    from vidstyle.models.export import export_onnx

    torch.manual_seed(3)
    net = build_net(name, tone=0.25).eval()
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


def instance_norms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.InstanceNorm2d) for m in net.modules())


def with_random_norms(net: nn.Module, seed: int) -> nn.Module:
    """``net`` with its norms' scales and shifts away from 1 and 0, as after training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=generator))
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.3)
    return net.eval()


def test_lite2_has_one_norm_of_lites_twelve_and_shares_its_parameter_names():
    lite, lite2 = build_net("lite"), build_net("lite2")
    assert (instance_norms(lite), instance_norms(lite2)) == (12, 1)
    assert set(lite2.state_dict()) < set(lite.state_dict())
    shapes = {k: v.shape for k, v in lite2.state_dict().items()}
    assert net_config_from_shapes(shapes) == {"channels": [8, 24, 64], "res_blocks": 5}


def test_lite2_export_has_one_instance_norm_node(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from vidstyle.models.export import export_onnx

    counts = {}
    for name in ("lite", "lite2"):
        graph = onnx.load(str(export_onnx(build_net(name), tmp_path / f"{name}.onnx"))).graph
        counts[name] = sum(node.op_type == "InstanceNormalization" for node in graph.node)
    assert counts == {"lite": 12, "lite2": 1}


def test_folding_on_one_frame_reproduces_lite_on_that_frame_only():
    from vidstyle.models.netlite import fold_norms

    torch.manual_seed(4)
    lite = with_random_norms(build_net("lite", tone=0.25), seed=4)
    frame, other = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 48, 64) * 0.5
    folded = fold_norms(lite, frame).eval()
    assert folded.config == {**lite.config, "name": "lite2"}
    with torch.inference_mode():
        assert torch.allclose(folded(frame), lite(frame), atol=1e-5)
        assert (folded(other) - lite(other)).abs().max() > 1e-3  # fixed statistics fit one picture


def test_folding_on_many_frames_keeps_the_norms_scale_and_shift_on_average():
    """Folded, the first dropped norm's channels average lite's shift over the frames, and their
    variance averages the square of lite's scale."""
    from vidstyle.models.netlite import fold_norms

    torch.manual_seed(5)
    lite = with_random_norms(build_net("lite"), seed=5)
    frames = torch.rand(6, 3, 32, 32) * torch.linspace(0.2, 1.0, 6).view(6, 1, 1, 1)
    folded = fold_norms(lite, frames)
    with torch.inference_mode():
        y = folded.encoder[1][0](folded.encoder[0](frames))
    norm = lite.encoder[1][1]
    assert torch.allclose(y.mean(dim=(2, 3)).mean(0), norm.bias, atol=1e-4)
    # within the norm's epsilon, which the fold keeps: var / (var + eps)
    assert torch.allclose(y.var(dim=(2, 3), unbiased=False).mean(0), norm.weight.square(), rtol=2e-2)


@pytest.mark.parametrize("name", ["lite2", "huang"])
def test_only_a_lite_network_is_folded(name):
    from vidstyle.models.netlite import fold_norms

    with pytest.raises(ValueError, match="takes a lite network"):
        fold_norms(build_net(name), torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("name, channels", [("lite2", (16, 32, 64)), ("lite", (12, 24, 80))])
def test_widened_network_computes_the_same_picture_with_wider_stages(name, channels):
    from vidstyle.models.netlite import widen

    torch.manual_seed(6)
    net = with_random_norms(build_net(name, tone=0.25), seed=6).eval()
    wide = widen(net, channels).eval()
    assert wide.config == {**net.config, "channels": list(channels)}
    assert wide.encoder[0][0].out_channels == channels[0]
    assert wide.residuals[0].body[1].in_channels == channels[2]
    frame = torch.rand(2, 3, 40, 56)
    with torch.inference_mode():
        assert torch.allclose(wide(frame), net(frame), atol=1e-6)
        assert torch.allclose(wide.forward_ungated(frame), net.forward_ungated(frame), atol=1e-6)


def test_a_widened_networks_new_channels_are_opened_by_training():
    """The weights by which old channels read new ones start at zero, and the first step's gradient
    moves them: the new width is not dead."""
    from vidstyle.models.netlite import widen

    torch.manual_seed(7)
    wide = widen(build_net("lite2"), (16, 32, 64))
    last = wide.decoder[2]                      # conv c1 -> 3: reads the 8 new full-resolution channels
    assert last.weight[:, 8:].abs().max() == 0
    wide.forward_ungated(torch.rand(1, 3, 32, 32)).mean().backward()
    assert last.weight.grad[:, 8:].abs().max() > 0


@pytest.mark.parametrize("channels", [(4, 24, 64), (8, 24), (8, 24, 63)])
def test_widening_to_fewer_channels_is_refused(channels):
    from vidstyle.models.netlite import widen

    with pytest.raises(ValueError, match="at least"):
        widen(build_net("lite2"), channels)
