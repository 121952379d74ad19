"""Stylizing networks: any input size, output in [0, 1], paper sizes, rebuildable from their config."""

import json

import pytest
import torch

from vidstyle.errors import ModelError
from vidstyle.models.net import NETS, ResidualBlock, build_net, count_parameters


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("size", [(64, 64), (37, 53), (3, 5), (1, 1)])
def test_output_has_input_size_and_values_in_0_1(name, size):
    torch.manual_seed(0)
    net = build_net(name)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_parameter_counts_match_the_papers():
    assert 240_000 <= count_parameters(build_net("huang")) <= 260_000      # "about 0.25 M"
    assert 1_660_000 <= count_parameters(build_net("johnson")) <= 1_700_000  # "1.68 M"


def test_count_parameters_can_skip_frozen_ones():
    net = build_net("huang")
    net.encoder.requires_grad_(False)
    frozen = sum(p.numel() for p in net.encoder.parameters())
    assert count_parameters(net, trainable_only=True) == count_parameters(net) - frozen


@pytest.mark.parametrize("name", sorted(NETS))
def test_config_is_small_json_that_rebuilds_the_same_network(name):
    torch.manual_seed(1)
    net = build_net(name, res_blocks=3)
    config = json.loads(json.dumps(net.config))
    twin = build_net(**config)
    twin.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 24, 20)
    assert torch.equal(twin(x), net(x))
    assert len(json.dumps(config)) < 200


def test_residual_block_keeps_the_identity_skip():
    block = ResidualBlock(8)
    last_norm = block.body[1][-1]
    with torch.no_grad():
        last_norm.weight.zero_()
        last_norm.bias.zero_()
    x = torch.randn(1, 8, 6, 6)
    assert torch.allclose(block(x), x)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = build_net("huang")
    net(torch.rand(1, 3, 20, 28)).square().sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.parameters())


def test_padding_is_cropped_away_not_resampled():
    """The top-left block of a non-multiple-of-4 input is computed on the same pixels as the padded
    input's: stylizing x, and x padded by hand then cropped, agree."""
    torch.manual_seed(0)
    net = build_net("huang").eval()
    x = torch.rand(1, 3, 30, 42)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 2), mode="reflect")
    assert torch.allclose(net(x), net(padded)[..., :30, :42], atol=1e-6)


def test_unknown_network_or_option_is_a_model_error():
    with pytest.raises(ModelError, match="unknown network"):
        build_net("vgg")
    with pytest.raises(ModelError, match="no option"):
        build_net("huang", width=3)
    with pytest.raises(ModelError, match="odd"):
        build_net("johnson", end_kernel=4)


def test_tone_gate_keeps_a_fade_to_black_dark_and_bright_frames_untouched():
    torch.manual_seed(0)
    plain, gated = build_net("huang"), build_net("huang", tone=0.25)
    gated.load_state_dict(plain.state_dict())
    scene = torch.rand(1, 3, 8, 12).repeat_interleave(6, 2).repeat_interleave(6, 3) * 0.5 + 0.4
    with torch.no_grad():
        bright = gated(scene), plain(scene)
        levels = (0.25, 0.1, 0.05, 0.0)        # fade: the scene's luma falls from ~0.15 to 0
        fade = [(float(gated(scene * k).mean()), float(plain(scene * k).mean())) for k in levels]
        grey_black = float(plain(torch.zeros(1, 3, 48, 72)).mean())
    assert torch.equal(bright[0], bright[1])                 # luma above the threshold: no change
    assert grey_black > 0.2                                 # without the gate black comes out grey
    assert fade[-1][0] == 0.0 and fade[-2][0] < 0.12       # with it, black stays black
    assert all(g < 0.75 * p for g, p in fade[:-1])          # every dark step is darker than ungated


def test_tone_is_kept_in_the_config_only_when_on():
    assert "tone" not in build_net("huang").config
    net = build_net("huang", tone=0.3)
    assert net.config["tone"] == 0.3 and build_net(**net.config).tone == 0.3
    with pytest.raises(ModelError, match="tone"):
        build_net("huang", tone=1.5)
