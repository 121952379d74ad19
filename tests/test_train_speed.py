"""The --channels-last option computes the same losses and gradients as NCHW; resume may switch it."""

import json

import torch

from tests.test_train import data, tiny_config  # noqa: F401  (data is a fixture)
from vidstyle.models.net import build_net
from vidstyle.training.losses import HybridLoss
from vidstyle.training.runfiles import load_checkpoint
from vidstyle.training.setup import Setup
from vidstyle.training.train import pair_loss, train
from vidstyle.training.trainconfig import resume_config
from vidstyle.training.vgg import VGG19


def _terms_and_grads(channels_last: bool, batch: dict[str, torch.Tensor]):
    setup = Setup(torch.device("cpu"), channels_last=channels_last)
    torch.manual_seed(0)
    net = build_net("huang").to(memory_format=setup.memory_format)
    style = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    loss_fn = HybridLoss(VGG19(last_layer="relu4_2"), style).to(memory_format=setup.memory_format)
    terms = pair_loss(net, loss_fn, batch, setup, amp=True)
    terms["total"].backward()
    return {k: float(v.detach()) for k, v in terms.items()}, {k: p.grad for k, p in net.named_parameters()}


def test_channels_last_step_matches_the_nchw_step():
    g = torch.Generator().manual_seed(2)
    batch = {"frame_t": torch.rand(2, 3, 32, 32, generator=g),
             "frame_t1": torch.rand(2, 3, 32, 32, generator=g),
             "flow_bw": torch.randn(2, 2, 32, 32, generator=g), "mask": torch.ones(2, 1, 32, 32)}
    terms_a, grads_a = _terms_and_grads(False, batch)
    terms_b, grads_b = _terms_and_grads(True, batch)
    for key, value in terms_a.items():
        assert abs(terms_b[key] - value) <= 1e-4 * abs(value), key
    # One scale for all: a conv bias followed by instance norm has a true gradient of zero, so its
    # computed gradient is rounding noise of the other layers' size.
    scale = max(float(grad.abs().max()) for grad in grads_a.values())
    for key, grad in grads_a.items():
        assert torch.allclose(grads_b[key], grad, atol=1e-3 * scale), key


def test_memory_format_is_a_setting_resume_may_change_and_the_step_count_is_kept(data, tmp_path):  # noqa: F811
    train(tiny_config(data, tmp_path, steps=2, channels_last=False), progress=False)
    config = resume_config(tmp_path, "tiny", {"steps": 3, "channels_last": True})
    saved = json.loads((tmp_path / "tiny" / "config.json").read_text())
    assert config.channels_last and not saved["channels_last"]
    train(config, resume=True, progress=False)
    assert load_checkpoint(tmp_path / "tiny" / "checkpoint.pt")["step"] == 3
