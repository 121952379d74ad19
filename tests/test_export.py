"""ONNX export: the exported graph runs in onnxruntime and matches PyTorch at any size."""


import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from vidstyle.cli import main  # noqa: E402
from vidstyle.errors import ModelError  # noqa: E402
from vidstyle.models.backends import OnnxRunner  # noqa: E402
from vidstyle.models.export import check_export, export_onnx, read_card  # noqa: E402
from vidstyle.models.net import build_net  # noqa: E402
from vidstyle.models.zoo import ModelCard, save_model  # noqa: E402


def small_net(seed: int = 0):
    """A narrow huang network with random weights: export must reproduce any weights, not trained ones."""
    torch.manual_seed(seed)
    return build_net("huang", channels=(4, 8, 8), res_blocks=1).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = small_net()
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "small.onnx", {"name": "small"})
    return net, path


@pytest.mark.parametrize("batch, height, width", [(2, 241, 333), (1, 48, 64), (3, 7, 5), (1, 9, 13)])
def test_exported_graph_matches_pytorch_at_odd_sizes_and_batches(exported, batch, height, width):
    net, path = exported
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
    with torch.inference_mode():
        expected = net(x).numpy()
    got = OnnxRunner(path, threads=1)(x.numpy())
    assert got.shape == (batch, 3, height, width)
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize("height, width", [(241, 333), (9, 13)])
def test_tone_gate_is_exported_and_a_dark_frame_stays_dark(tmp_path, height, width):
    torch.manual_seed(2)
    net = build_net("huang", channels=(4, 8, 8), res_blocks=1, tone=0.25).eval()
    path = export_onnx(net, tmp_path / "toned.onnx")
    x = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(3))
    x[1] *= 0.1                                   # a dark frame: the gate darkens it
    x[0, :, : height // 2] = 0.0                  # and a black band at the top of the other
    with torch.inference_mode():
        expected = net(x).numpy()
    got = OnnxRunner(path, threads=1)(x.numpy())
    assert np.abs(got - expected).max() < 1e-4
    assert got[1].mean() < 0.5 * got[0, :, -2:].mean()
    if height > 32:   # the gate averages 8x8 blocks: well inside a black band the output is black
        assert got[0, :, : height // 2 - 12].max() < 1e-6


def test_export_keeps_the_model_card_and_leaves_the_network_untouched(tmp_path):
    net = small_net(1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    path = export_onnx(net, tmp_path / "m.onnx", {"name": "m", "style_image": "x.jpg"})
    assert read_card(path) == {"name": "m", "style_image": "x.jpg"}
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_check_catches_an_export_of_other_weights(exported):
    _, path = exported
    with pytest.raises(ModelError, match="differs from PyTorch"):
        check_export(small_net(seed=5), path)


def test_failed_check_leaves_no_file(tmp_path, monkeypatch):
    def fail(net, path):
        raise ModelError("differs")

    monkeypatch.setattr("vidstyle.models.export.check_export", fail)
    with pytest.raises(ModelError):
        export_onnx(small_net(), tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_runner_refuses_frames_below_the_minimum_side(exported):
    with pytest.raises(ModelError, match="at least 5x5"):
        OnnxRunner(exported[1])(np.zeros((1, 3, 4, 20), np.float32))


def test_runner_gives_one_line_error_for_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxRunner(bad)


def test_export_command_writes_a_checked_file_and_refuses_bad_arguments(tmp_path, capsys):
    net = small_net()
    card = ModelCard("small", net.config, style_image="none.jpg", description="random, for tests")
    weights = save_model(net, tmp_path / "small.safetensors", card)
    out = tmp_path / "small.onnx"
    assert main(["export", str(weights), "--onnx", str(out)]) == 0
    assert "matches PyTorch" in capsys.readouterr().out
    assert read_card(out)["name"] == "small"
    x = np.random.default_rng(0).random((1, 3, 241, 333), dtype=np.float32)
    with torch.inference_mode():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.abs(OnnxRunner(out)(x) - expected).max() < 1e-4

    assert main(["export", str(weights), "--onnx", str(tmp_path / "x.pt")]) == 2
    assert main(["export", str(tmp_path / "missing.safetensors"), "--onnx", str(out)]) == 2
    assert main(["export", str(weights), "--onnx", str(tmp_path / "no" / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("vidstyle: error:") == 3 and "Traceback" not in err
