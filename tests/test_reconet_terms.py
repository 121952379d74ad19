"""ReCoNet's two temporal terms: luminance-aware output loss and feature-map loss, in training."""

import json

import pytest
import torch
from torch.nn import functional as F

from tests.test_train import data, tiny_config  # noqa: F401  (data is a fixture)
from vidstyle.cli import main
from vidstyle.errors import ConfigError
from vidstyle.models.net import build_net, luma
from vidstyle.training.losses import HybridLoss, feature_temporal_loss, temporal_loss
from vidstyle.training.setup import Setup
from vidstyle.training.train import pair_loss, train
from vidstyle.training.vgg import VGG19


def texture(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_luminance_aware_loss_forgives_a_change_of_light_that_the_output_follows():
    frame_t = texture()
    frame_t1 = (frame_t * 0.7).clamp(0, 1)               # the light dims; nothing moves
    flow, mask = torch.zeros(2, 2, 32, 32), torch.ones(2, 1, 32, 32)
    out_t = texture(seed=1) * 0.5 + 0.25
    follows = out_t + (luma(frame_t1) - luma(frame_t))   # the output dims by the input's luma change
    plain = temporal_loss(out_t, follows, flow, mask)
    aware = temporal_loss(out_t, follows, flow, mask, (frame_t, frame_t1))
    assert plain > 1e-3 and aware < 1e-10
    # An output that ignores the change of light is what the luminance-aware loss now charges.
    assert temporal_loss(out_t, out_t, flow, mask, (frame_t, frame_t1)) > 1e-3
    assert temporal_loss(out_t, out_t, flow, mask) == 0


def test_luminance_aware_loss_still_charges_flicker_when_the_light_is_steady():
    frame = texture()
    out_t, flicker = texture(seed=1), texture(seed=2)
    flow, mask = torch.zeros(2, 2, 32, 32), torch.ones(2, 1, 32, 32)
    assert torch.isclose(temporal_loss(out_t, flicker, flow, mask, (frame, frame)),
                         temporal_loss(out_t, flicker, flow, mask))


def test_feature_loss_is_zero_for_features_that_move_with_the_frame_and_not_otherwise():
    # Features at 1/4 of the side that move 8 frame pixels right = 2 feature pixels.
    base = texture(1, 16, seed=3)
    features_t = base
    features_t1 = torch.roll(base, shifts=2, dims=-1)
    flow_bw = torch.zeros(1, 2, 64, 64)
    flow_bw[:, 0] = -8.0                                  # t+1 at x came from t at x - 8
    mask = torch.ones(1, 1, 64, 64)
    mask[..., :8] = 0                                     # the columns that came in from outside
    assert feature_temporal_loss(features_t, features_t1, flow_bw, mask) < 1e-10
    assert feature_temporal_loss(features_t, features_t1, torch.zeros_like(flow_bw), mask) > 1e-3
    # One unreliable frame pixel takes its whole feature pixel out.
    spoiled = features_t1.clone()
    spoiled[..., 5, 9] += 10.0
    spot = mask.clone()
    spot[..., 5 * 4 + 1, 9 * 4 + 2] = 0
    assert feature_temporal_loss(features_t, spoiled, flow_bw, mask) > 1e-3
    assert feature_temporal_loss(features_t, spoiled, flow_bw, spot) < 1e-10


def _pair_terms(batch, **config_changes):
    from vidstyle.training.trainconfig import TrainConfig

    torch.manual_seed(0)
    net = build_net("huang")
    style = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    config = TrainConfig(**config_changes)
    loss_fn = HybridLoss(VGG19(last_layer="relu4_2"), style, config.loss_weights(),
                         luminance=config.luminance_temporal)
    terms = pair_loss(net, loss_fn, batch, Setup(torch.device("cpu")), amp=False, config=config)
    terms["total"].backward()
    grads = sum(float(p.grad.abs().sum()) for p in net.encoder.parameters())
    return {k: float(v.detach()) for k, v in terms.items()}, grads


def test_feature_term_enters_the_total_and_its_gradient_reaches_the_encoder():
    frame = F.interpolate(texture(2, 16, seed=4), size=32, mode="nearest")
    batch = {"frame_t": frame, "frame_t1": torch.roll(frame, 4, -1),
             "flow_bw": torch.zeros(2, 2, 32, 32), "mask": torch.ones(2, 1, 32, 32)}
    batch["flow_bw"][:, 0] = -4.0
    off, _ = _pair_terms(batch, compound_weight=0.0, temporal_weight=0.0)
    on, _ = _pair_terms(batch, compound_weight=0.0, temporal_weight=0.0, feature_temporal_weight=1e3)
    assert off["feature_temporal"] == 0.0 and on["feature_temporal"] > 0
    assert on["total"] == pytest.approx(off["total"] + 1e3 * on["feature_temporal"], rel=1e-5)
    # With only the feature term weighted, the encoder still gets a gradient from it.
    _, grads = _pair_terms(batch, content_weight=0.0, style_weight=0.0, tv_weight=0.0,
                           temporal_weight=0.0, compound_weight=0.0, feature_temporal_weight=1.0)
    assert grads > 0


def test_a_run_with_both_terms_trains_logs_them_and_records_them_in_its_card(data, tmp_path):  # noqa: F811
    config = tiny_config(data, tmp_path, steps=4, luminance_temporal=True, feature_temporal_weight=1e4)
    result = train(config, progress=False)
    rows = (result.run_dir / "losses.csv").read_text().splitlines()
    assert "feature_temporal" in rows[0].split(",")
    column = rows[0].split(",").index("feature_temporal")
    assert all(float(row.split(",")[column]) > 0 for row in rows[1:])
    card = json.loads((result.run_dir / "tiny.json").read_text())["trained"]
    assert card["weights"]["feature_temporal"] == 1e4 and card["luminance_temporal"] is True


def test_cli_takes_the_flags_and_refuses_a_negative_feature_weight(data, tmp_path, capsys):  # noqa: F811
    common = ["train", "--style", str(data / "style.png"), "--flows", str(data / "flows"),
              "--runs", str(tmp_path), "--steps", "2", "--batch", "1", "--size", "32",
              "--style-size", "64", "--device", "cpu", "--threads", "1"]
    assert main([*common, "--name", "bad", "--feature-temporal-weight", "-1"]) == 2
    assert "must not be negative" in capsys.readouterr().err
    assert main([*common, "--name", "ok", "--luminance-temporal", "--feature-temporal-weight", "5"]) == 0
    saved = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert saved["luminance_temporal"] is True and saved["feature_temporal_weight"] == 5.0


def test_feature_term_needs_a_network_with_residual_blocks():
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x

    from vidstyle.training.train import bottleneck_features

    with pytest.raises(ConfigError, match="residual blocks"), bottleneck_features(Plain(), True):
        pass
