"""VGG-19 loss network: the pretrained weights are really loaded, the Caffe input convention, layers."""

import pytest
import torch
import torch.nn.functional as F

from vidstyle.errors import ModelError
from vidstyle.training.vgg import LAYERS, VGG19


@pytest.fixture(scope="module")
def vgg():
    return VGG19()


def _random_vgg(seed: int) -> VGG19:
    torch.manual_seed(seed)
    return VGG19(weights=None)


def _shuffled_vgg(seed: int) -> VGG19:
    """The pretrained values, each layer's entries permuted: same weight histogram, no learned structure."""
    net = VGG19()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.flatten()[torch.randperm(p.numel(), generator=generator)].view_as(p))
    return net


def _smooth_to_white_ratio(net: VGG19, layer: str, seed: int) -> float:
    """Energy of ``layer``'s response to a low-pass perturbation of a grey image, over the energy of its
    response to a white-noise perturbation of the same pixel energy."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 3, 64, 64, generator=generator)
    smooth = F.avg_pool2d(F.pad(noise, (4, 4, 4, 4), mode="circular"), 9, stride=1)
    grey = torch.full((1, 3, 64, 64), 0.5)
    base = net(grey, [layer])[layer]

    def energy(delta):
        return float(((net(grey + 0.1 * delta / delta.std(), [layer])[layer] - base) ** 2).mean())

    return energy(smooth) / energy(noise)


def test_pretrained_deep_features_prefer_smooth_structure_to_white_noise(vgg):
    """The weights check. A network trained on photographs (whose spectrum falls like 1/f) spends its
    deep features on spatially coherent structure: at relu4_2 it answers a low-pass perturbation
    several times more strongly (measured: 3.4 to 4.8) than white noise of equal pixel energy. A VGG
    with i.i.d. random filters is spectrally flat (for i.i.d. taps the expected response energy does
    not depend on the input's spectrum; measured 0.4 to 0.7), and so is the pretrained network with
    each layer's weights shuffled. The check runs the whole path: file, dequantization, layer order,
    Caffe input conversion and forward."""
    for seed in range(2):
        assert _smooth_to_white_ratio(vgg, "relu4_2", seed) > 2.0
        assert _smooth_to_white_ratio(_random_vgg(seed), "relu4_2", seed) < 1.5
    assert _smooth_to_white_ratio(_shuffled_vgg(0), "relu4_2", 0) < 1.5


def _neighbour_tap_correlation(weight: torch.Tensor) -> float:
    left, right = weight[..., :, :-1].flatten(), weight[..., :, 1:].flatten()
    up, down = weight[..., :-1, :].flatten(), weight[..., 1:, :].flatten()
    return float(torch.corrcoef(torch.stack([torch.cat([left, up]), torch.cat([right, down])]))[0, 1])


def test_every_conv_layer_has_spatially_smooth_kernels_unlike_random_init(vgg):
    """Learned 3x3 kernels vary smoothly (neighbouring taps correlate, 0.48-0.68 over all 16 layers
    of this file); i.i.d. initial weights do not (|r| < 0.1). Catches a layer loaded from the wrong
    entry or dequantized with a scrambled table."""
    random = _random_vgg(0)
    for name, module in vgg.named_children():
        assert _neighbour_tap_correlation(module.weight) > 0.35, name
        assert abs(_neighbour_tap_correlation(getattr(random, name).weight)) < 0.1, name


def test_caffe_input_is_bgr_0_255_minus_imagenet_means(vgg):
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    caffe = vgg.caffe_input(red)
    assert torch.allclose(caffe[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255.0 - 123.68]))


def test_forward_returns_asked_layers_with_stage_resolutions(vgg):
    x = torch.rand(2, 3, 64, 48)
    out = vgg(x, ["relu1_2", "relu3_1", "relu5_1"])
    assert set(out) == {"relu1_2", "relu3_1", "relu5_1"}
    assert out["relu1_2"].shape == (2, 64, 64, 48)
    assert out["relu3_1"].shape == (2, 256, 16, 12)
    assert out["relu5_1"].shape == (2, 512, 4, 3)
    assert all(bool((t >= 0).all()) for t in out.values())


def test_shallow_network_stops_at_last_layer_and_refuses_deeper_ones():
    net = VGG19(last_layer="relu2_1")
    assert [name for name, _ in net.named_children()] == ["conv1_1", "conv1_2", "conv2_1"]
    assert net(torch.rand(1, 3, 16, 16), ["relu2_1"])["relu2_1"].shape == (1, 128, 8, 8)
    with pytest.raises(ModelError, match="relu3_1"):
        net(torch.rand(1, 3, 16, 16), ["relu3_1"])
    with pytest.raises(ModelError):
        VGG19(last_layer="relu9_9")
    assert LAYERS[0] == "relu1_1" and LAYERS[-1] == "relu5_4"


def test_frozen_in_eval_mode_yet_passes_gradients_to_the_input(vgg):
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg(x, ["relu2_2"])["relu2_2"].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_moves_to_another_dtype_with_its_mean_buffer(vgg):
    x = torch.rand(1, 3, 32, 32)
    as_float = vgg(x, ["relu2_1"])["relu2_1"]
    net64 = VGG19(last_layer="relu2_1").to(torch.float64)
    as_double = net64(x.double(), ["relu2_1"])["relu2_1"]
    assert as_double.dtype == torch.float64
    assert torch.allclose(as_double.float(), as_float, rtol=1e-4, atol=1e-3)


def test_missing_weight_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        VGG19(weights=tmp_path / "nothing.bin")


def _reference_features(vgg: VGG19, x: torch.Tensor, last: str) -> torch.Tensor:
    """The same network written out plainly in float64, NCHW."""
    h = vgg.caffe_input(x.double()).double()
    for name in vgg.layer_names[:vgg.layer_names.index(last) + 1]:
        stage, k = name[4:].split("_")
        if k == "1" and stage != "1":
            h = F.max_pool2d(h, 2)
        conv = getattr(vgg, f"conv{stage}_{k}")
        h = F.relu(F.conv2d(h, conv.weight.double(), conv.bias.double(), padding=1))
    return h


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_features_and_input_gradient_match_a_plain_float64_network(vgg, memory_format):
    """channels_last (the memory format training may choose) changes how activations are stored, not
    their values or the gradient the stylizing network receives."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64)
    weights = torch.rand(2, 256, 10, 10, dtype=torch.float64)
    ref_x = x.clone().requires_grad_(True)
    ref = _reference_features(vgg, ref_x, "relu3_2")
    (ref * weights).sum().backward()

    net = VGG19(last_layer="relu3_2").to(memory_format=memory_format)
    ours_x = x.float().contiguous(memory_format=memory_format).requires_grad_(True)
    ours = net(ours_x, ["relu1_2", "relu3_2"])["relu3_2"]
    (ours * weights.float()).sum().backward()
    ours, ref = ours.detach().double(), ref.detach()
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-3 * float(ref.abs().max()))
    scale = float(ref_x.grad.abs().max())
    assert scale > 0
    assert torch.allclose(ours_x.grad.double(), ref_x.grad, atol=1e-4 * scale)
