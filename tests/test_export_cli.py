"""vidstyle export: the default file name and the ONNX file's declared shapes."""

import onnx

from vidstyle.cli import main


def test_export_without_onnx_writes_name_onnx_here_with_rgb_channels_declared(capsys, tmp_path, model,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(model), "--quiet"]) == 0
    written = tmp_path / f"{model.stem}.onnx"
    assert written.is_file()
    graph = onnx.load(str(written)).graph
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims] == [
            "batch", 3, "height", "width"]
