"""The onnx backend without torch: once a model's export is cached, a whole infer job (lookup, card,
decode, onnxruntime, stabilizer, colour, encode) never imports torch, and gives what the first run
gave. Each job runs in its own Python process, as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.clips import distinct_frames, write_test_clip
from vidstyle.errors import ModelError
from vidstyle.io.video import iter_frames
from vidstyle.models.backends import CacheUnwritable, model_file_key, onnx_installed
from vidstyle.models.lazymodel import open_model
from vidstyle.models.zoo import read_card

pytestmark = pytest.mark.skipif(not onnx_installed(), reason="onnxruntime/onnx not installed")
ROOT = Path(__file__).resolve().parent.parent

# Runs the command in this process, then reports whether torch was ever imported.
_PROBE = ("import sys; from vidstyle.cli import main; code = main(sys.argv[1:]); "
          "print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH'); sys.exit(code)")


def _infer(cache: Path, *args) -> str:
    """``vidstyle infer ARGS`` in a fresh interpreter with ``cache`` as $VIDSTYLE_CACHE: its stdout."""
    env = {**os.environ, "VIDSTYLE_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _PROBE, "infer", *map(str, args), "--quiet",
                           "--device", "cpu", "--threads", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _frames(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path))).astype(int)


def test_onnx_jobs_never_import_torch_and_the_second_matches_the_first(tmp_path, model):
    clip = write_test_clip(tmp_path / "in.mp4", distinct_frames(6, width=45, height=33), fps=10)
    cache = tmp_path / "cache"
    common = [clip, "--model", model, "--backend", "onnx", "--lossless", "--preserve-color"]
    first = _infer(cache, *common, "-o", tmp_path / "first.mp4")
    assert "NO_TORCH" in first                   # a cold cache: a child process exports it once
    assert len(list((cache / "onnx").glob("*.onnx"))) == 1
    second = _infer(cache, *common, "-o", tmp_path / "second.mp4")
    assert "NO_TORCH" in second and "onnx" in second
    a, b = _frames(tmp_path / "first.mp4"), _frames(tmp_path / "second.mp4")
    assert a.shape == (6, 33, 45, 3) and np.abs(a - b).max() <= 1


def test_auto_batch_of_a_video_and_a_photo_runs_without_torch_once_cached(tmp_path, model):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_test_clip(inputs / "clip.mp4", distinct_frames(4, width=40, height=24), fps=10)
    Image.fromarray(distinct_frames(1, width=30, height=20)[0]).save(inputs / "photo.png")
    cache = tmp_path / "cache"
    _infer(cache, inputs / "photo.png", "--model", model, "-o", tmp_path / "warm.png")
    out = _infer(cache, inputs, "--model", model, "-o", tmp_path / "out", "--json")
    summary = json.loads(out[:out.rindex("}") + 1])
    assert "NO_TORCH" in out and summary["done"] == 2 and summary["failed"] == 0
    assert {r["kind"]: r["backend"] for r in summary["results"]} == {"video": "onnx", "photo": "onnx"}
    assert Image.open(tmp_path / "out" / "photo.testnet.png").size == (30, 20)


def test_export_key_follows_the_file_bytes_and_the_cards_network_not_its_path(tmp_path, model):
    card = read_card(open_model(model).entry)
    copy = shutil.copy(model, tmp_path / "elsewhere.safetensors")
    assert model_file_key(copy, card.net) == model_file_key(model, card.net)
    assert model_file_key(model, {**card.net, "tone": 0.5}) != model_file_key(model, card.net)
    changed = bytearray(Path(model).read_bytes())
    changed[-1] ^= 1                                # one weight's last byte
    (tmp_path / "changed.safetensors").write_bytes(bytes(changed))
    assert model_file_key(tmp_path / "changed.safetensors", card.net) != model_file_key(model, card.net)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_model_without_a_cached_export_is_loaded_and_checked_at_once(tmp_path, model, backend,
                                                                       monkeypatch):
    monkeypatch.setenv("VIDSTYLE_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(Path(model).read_bytes()[:-64])    # cut short: its tensors no longer fit
    shutil.copy(Path(model).with_suffix(".json"), bad.with_suffix(".json"))
    with pytest.raises(ModelError, match="bad.safetensors"):     # onnx: the child's one line, again
        open_model(bad, backend=backend, device="cpu")
    assert not list((tmp_path / "cache").glob("**/*.onnx"))


def test_first_export_runs_in_a_child_once_and_says_so(tmp_path, model, monkeypatch):
    monkeypatch.setenv("VIDSTYLE_CACHE", str(tmp_path / "cache"))
    notes: list[str] = []
    opened = open_model(model, backend="onnx", device="cpu", notify=notes.append)
    assert opened._net is None and opened.onnx_cached()          # exported, not loaded here
    assert len(notes) == 1 and "exporting" in notes[0] and "once" in notes[0]
    again = open_model(model, backend="onnx", device="cpu", notify=notes.append)
    assert again.onnx_file() == opened.onnx_file() and len(notes) == 1


def test_an_unwritable_cache_fails_onnx_by_name_and_lets_auto_load_the_network(tmp_path, model,
                                                                               monkeypatch):
    network = open_model(model, backend="torch").network
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("VIDSTYLE_CACHE", str(blocker))
    with pytest.raises(CacheUnwritable, match="cache"):
        open_model(model, backend="onnx", device="cpu")
    monkeypatch.setattr("vidstyle.models.backends.ONNX_ALWAYS", frozenset({network}))
    opened = open_model(model, backend="auto", device="cpu")
    assert opened._net is not None                 # the job will run on torch, as StylizerPool says


def test_auto_device_is_the_cpu_without_torch_where_torch_has_no_gpu_library(tmp_path, monkeypatch):
    import importlib.util

    import vidstyle.models.backends as backends

    fake = tmp_path / "torch"
    (fake / "lib").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "lib" / "libtorch_cpu.so").write_text("")
    spec = importlib.util.spec_from_file_location("torch", fake / "__init__.py")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "torch" else None)
    assert not backends._gpu_possible() and backends.device_type("auto") == "cpu"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)      # no torch at all
    assert not backends._gpu_possible()


def test_a_child_that_dies_without_a_report_is_one_model_error(tmp_path, monkeypatch):
    from vidstyle.models import exportchild

    script = tmp_path / "dies.py"
    script.write_text("import sys\nsys.stderr.write('Segmentation fault (core dumped)')\nsys.exit(139)\n")
    (tmp_path / "python").write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    (tmp_path / "python").chmod(0o755)
    monkeypatch.setattr(exportchild.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ModelError, match=r"exporting m for onnxruntime failed .*Segmentation fault"):
        exportchild.export_in_child(tmp_path / "m.safetensors", "m", "k", tmp_path)


def test_the_export_child_imports_the_parents_vidstyle_even_where_none_is_installed(tmp_path,
                                                                                   monkeypatch):
    # `python path/to/infer.py` from a clone that was never installed, run in another folder: the
    # child, started with `python -m`, finds vidstyle only through the path the parent gives it.
    import vidstyle
    from vidstyle.models import exportchild

    script = tmp_path / "child.py"
    script.write_text("import json, vidstyle\nprint(json.dumps({'path': vidstyle.__file__}))\n")
    (tmp_path / "python").write_text(f"#!/bin/sh\nexec {sys.executable} -S {script}\n")  # no site
    (tmp_path / "python").chmod(0o755)
    monkeypatch.setattr(exportchild.sys, "executable", str(tmp_path / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    found = exportchild.export_in_child(tmp_path / "m.safetensors", "m", "k", tmp_path)
    assert found.resolve() == Path(vidstyle.__file__).resolve()
