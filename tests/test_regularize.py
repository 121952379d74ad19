"""The stability terms: zero for networks that commute with motion and ignore noise."""

import pytest
import torch
from torch import nn

from vidstyle.models.net import build_net
from vidstyle.training.losses import warp
from vidstyle.training.regularize import compound_loss, inside_mask, random_smooth_flow, shift_loss


def _frames(n=2, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth random pictures: low-resolution noise upsampled
    return torch.nn.functional.interpolate(torch.rand(n, 3, h // 4, w // 4, generator=g), size=(h, w),
                                           mode="bilinear", align_corners=False)


def test_random_smooth_flow_is_bounded_smooth_and_reproducible():
    a = random_smooth_flow(3, 40, 48, 4.0, generator=torch.Generator().manual_seed(1))
    b = random_smooth_flow(3, 40, 48, 4.0, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 2, 40, 48) and torch.equal(a, b)
    assert a.abs().max() < 4.0 * 4          # shift up to 4 px plus a deformation of ~2 px
    assert (a[..., 1:, :] - a[..., :-1, :]).abs().max() < 1.0     # smooth: < 1 px change a pixel
    assert a.std() > 0.5                                          # and not trivially zero


def test_a_pointwise_linear_network_commutes_with_the_warp_so_the_term_is_zero():
    net = nn.Conv2d(3, 3, 1)   # 1x1 conv: a per-pixel linear map commutes with bilinear warping
    frames = _frames()
    flow = random_smooth_flow(2, 40, 48, 3.0, generator=torch.Generator().manual_seed(2))
    assert compound_loss(net, frames, net(frames), flow, noise_std=0.0) < 1e-10


def test_a_network_that_ignores_its_input_is_immune_to_noise_and_motion():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.full_like(x, 0.3)

    net, frames = Constant(), _frames()
    flow = random_smooth_flow(2, 40, 48, 3.0, generator=torch.Generator().manual_seed(3))
    assert compound_loss(net, frames, net(frames), flow, noise_std=0.1) < 1e-12


def test_a_network_anchored_to_the_pixel_grid_is_penalized():
    class GridTexture(nn.Module):             # adds a fixed pattern tied to the image grid ("boiling")
        def forward(self, x):
            h, w = x.shape[-2:]
            pattern = torch.sin(torch.arange(w, dtype=x.dtype) * 2.0).view(1, 1, 1, w).expand(-1, 3, h, -1)
            return x + 0.2 * pattern

    net, frames = GridTexture(), _frames()
    flow = torch.zeros(2, 2, 40, 48)
    flow[:, 0] = 1.5
    pointwise = nn.Identity()
    assert compound_loss(pointwise, frames, pointwise(frames), flow) < 1e-10
    assert compound_loss(net, frames, net(frames), flow) > 1e-3


def test_noise_moves_a_real_network_and_the_term_has_a_gradient():
    torch.manual_seed(0)
    net, frames = build_net("huang"), _frames()
    flow = torch.zeros(2, 2, 40, 48)
    loss = compound_loss(net, frames, net(frames), flow, noise_std=0.05)
    assert loss > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_inside_mask_drops_points_that_leave_the_frame():
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 2.0
    mask = inside_mask(flow)
    assert mask[0, 0, :, :10].min() == 1 and mask[0, 0, :, 10:].max() == 0
    assert torch.allclose(warp(torch.ones(1, 1, 10, 12), flow), torch.ones(1, 1, 10, 12))


def test_the_exact_shift_term_is_zero_for_a_translation_equivariant_network():
    # a stride-1 convolution with zero padding is exactly equivariant to whole-pixel moves away from
    # the border, however sharp its output; the compound term's bilinear warp charges it all the same
    torch.manual_seed(0)
    net, frames = nn.Conv2d(3, 3, 5, padding=2), torch.rand(2, 3, 40, 48)   # sharp: pixel noise
    for seed in range(6):
        generator = torch.Generator().manual_seed(seed)
        assert shift_loss(net, frames, net(frames), generator=generator) < 1e-10
    flow = torch.zeros(2, 2, 40, 48)
    flow[:, 0] = 1.5
    assert compound_loss(net, frames, net(frames), flow) > 1e-3


def test_the_exact_shift_term_charges_a_network_tied_to_a_4_pixel_grid():
    # a stride-4 stage and nearest upsampling: the result changes when the input moves by 1-3 px
    class Grid(nn.Module):
        def forward(self, x):
            coarse = nn.functional.avg_pool2d(x, 4, ceil_mode=True)
            fine = nn.functional.interpolate(coarse, scale_factor=4, mode="nearest")
            return fine[..., :x.shape[-2], :x.shape[-1]]

    frames = torch.rand(2, 3, 40, 48)
    losses = [float(shift_loss(Grid(), frames, Grid()(frames), generator=torch.Generator().manual_seed(s)))
              for s in range(6)]
    assert min(losses) > 1e-3


def test_the_exact_shift_term_has_a_gradient_and_refuses_tiny_frames():
    torch.manual_seed(0)
    net, frames = build_net("huang"), _frames()
    loss = shift_loss(net, frames, net(frames), noise_std=0.02)
    assert loss > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="too small"):
        shift_loss(nn.Identity(), torch.rand(1, 3, 18, 40), torch.rand(1, 3, 18, 40))
