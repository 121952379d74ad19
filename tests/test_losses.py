"""Losses: Gram normalization, TV, the torch warp against vidstyle.flow.optical.warp, temporal loss,
HybridLoss."""

import numpy as np
import pytest
import torch

from vidstyle.flow import optical as flow
from vidstyle.training.losses import HybridLoss, LossWeights, gram, temporal_loss, tv_loss, warp
from vidstyle.training.vgg import VGG19


def _to_torch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def test_gram_is_feature_products_normalized_by_c_h_w():
    features = torch.randn(2, 5, 4, 3)
    expected = torch.einsum("nchw,ndhw->ncd", features, features) / (5 * 4 * 3)
    assert torch.allclose(gram(features), expected, atol=1e-6)
    assert torch.allclose(gram(torch.ones(1, 4, 6, 6)), torch.full((1, 4, 4), 1 / 4))


def test_gram_of_bf16_features_is_float32():
    assert gram(torch.randn(1, 3, 8, 8).bfloat16()).dtype == torch.float32


def test_tv_of_horizontal_ramp_is_mean_squared_step():
    ramp = torch.arange(6.0).mul(0.1).expand(1, 3, 4, 6)
    horizontal, vertical = 3 * 4 * 5, 3 * 3 * 6
    assert float(tv_loss(ramp)) == pytest.approx(0.01 * horizontal / (horizontal + vertical))
    assert float(tv_loss(torch.full((1, 3, 5, 5), 0.3))) == 0.0


@pytest.mark.parametrize("seed, shape, spread", [(0, (23, 31), 3.0), (1, (40, 17), 12.0), (2, (8, 64), 0.5)])
def test_torch_warp_agrees_with_flow_warp_on_random_images_and_flows(seed, shape, spread):
    """Random images and flows, many pointing outside (border replication); spread in pixels."""
    rng = np.random.default_rng(seed)
    image = rng.random((*shape, 3), dtype=np.float32)
    flow_bw = rng.normal(0.0, spread, (*shape, 2)).astype(np.float32)
    expected = flow.warp(image, flow_bw)
    got = warp(_to_torch(image), _to_torch(flow_bw))[0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).max() < 1e-3


def test_warp_by_integer_shift_moves_the_image_and_replicates_the_border():
    image = torch.arange(20.0).view(1, 1, 4, 5)
    shift = torch.zeros(1, 2, 4, 5)
    shift[:, 0] = 2.0   # out(x) = image(x + 2)
    out = warp(image, shift)
    assert torch.equal(out[..., :3], image[..., 2:])
    assert torch.equal(out[..., 3:], image[..., 4:].expand(1, 1, 4, 2))


def test_warp_is_differentiable_in_image_and_flow():
    image = torch.rand(1, 3, 10, 12, requires_grad=True)
    flow_bw = (torch.rand(1, 2, 10, 12) * 2).requires_grad_()
    warp(image, flow_bw).sum().backward()
    assert float(image.grad.abs().sum()) > 0 and float(flow_bw.grad.abs().sum()) > 0


def _pair(seed=0, shape=(1, 3, 24, 32)):
    generator = torch.Generator().manual_seed(seed)
    out_t = torch.rand(shape, generator=generator)
    flow_bw = torch.randn(shape[0], 2, *shape[2:], generator=generator) * 2
    mask = (torch.rand(shape[0], 1, *shape[2:], generator=generator) > 0.3).float()
    return out_t, flow_bw, mask


def test_temporal_loss_is_zero_for_the_warped_output_and_grows_with_flicker():
    out_t, flow_bw, mask = _pair()
    exact = warp(out_t, flow_bw)
    assert float(temporal_loss(out_t, exact, flow_bw, mask)) == pytest.approx(0.0, abs=1e-12)
    losses = [float(temporal_loss(out_t, exact + a, flow_bw, mask)) for a in (0.01, 0.05, 0.2)]
    assert losses == sorted(losses) and losses[0] > 0
    # A uniform flicker of a gives a^2 on every reliable pixel, and the mean counts all pixels.
    assert losses[1] == pytest.approx(0.05 ** 2 * float(mask.mean()), rel=1e-4)


def test_masked_pixels_contribute_nothing():
    out_t, flow_bw, mask = _pair(1)
    out_t1 = warp(out_t, flow_bw) + 0.1
    base = float(temporal_loss(out_t, out_t1, flow_bw, mask))
    y, x = (mask[0, 0] == 0).nonzero()[0].tolist()
    changed = out_t1.clone()
    changed[..., y, x] += 0.7
    assert float(temporal_loss(out_t, changed, flow_bw, mask)) == pytest.approx(base, rel=1e-6)
    y, x = (mask[0, 0] == 1).nonzero()[0].tolist()
    changed = out_t1.clone()
    changed[..., y, x] += 0.7
    assert float(temporal_loss(out_t, changed, flow_bw, mask)) > base
    assert float(temporal_loss(out_t, out_t1, flow_bw, mask[:, 0])) == pytest.approx(base)


@pytest.fixture(scope="module")
def vgg():
    return VGG19(last_layer="relu4_2")


def test_hybrid_loss_has_no_content_loss_for_identity_and_no_style_loss_for_the_style_image(vgg):
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32)
    frames = torch.rand(2, 3, 32, 32)
    flow_bw, mask = torch.zeros(1, 2, 32, 32), torch.ones(1, 1, 32, 32)
    loss = HybridLoss(vgg, style)
    identity = loss(frames[:1], frames[1:], frames[:1], frames[1:], flow_bw, mask)
    assert float(identity["content"]) == 0.0 and float(identity["style"]) > 0
    styled = loss(frames[:1], frames[1:], style, style, flow_bw, mask)
    assert float(styled["style"]) == pytest.approx(0.0, abs=1e-3 * float(identity["style"]))
    assert float(styled["temporal"]) == 0.0 and float(styled["content"]) > 0


def test_hybrid_total_is_the_weighted_sum_of_the_terms(vgg):
    torch.manual_seed(0)
    weights = LossWeights(content=2.0, style=3.0, tv=5.0, temporal=7.0)
    loss = HybridLoss(vgg, torch.rand(1, 3, 40, 24), weights)
    frames, out = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    flow_bw, mask = torch.randn(1, 2, 24, 24), torch.ones(1, 1, 24, 24)
    terms = loss(frames[:1], frames[1:], out[:1], out[1:], flow_bw, mask)
    expected = sum(w * float(terms[k]) for k, w in weights.as_dict().items())
    assert float(terms["total"]) == pytest.approx(expected, rel=1e-5)
