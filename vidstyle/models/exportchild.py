"""A model file's ONNX export made in a Python process of its own, so the job that asked for it never
loads torch.

    path = export_in_child(weights, name, key, folder)   # parent: ModelError / CacheUnwritable
    python -m vidstyle.models.exportchild WEIGHTS NAME KEY FOLDER   # the child

Loading torch and exporting take about 250 MB; in the job's own process that memory stayed on top of
its frames (a first run at 1080p peaked at 900-925 MB, a later one at 640-690 MB). The child
loads and checks the model file (:func:`vidstyle.models.zoo.load_model`), writes the checked export to
the cache (:func:`vidstyle.models.backends.cached_export`) and ends; its memory is given back before
the first frame is read. It reports on its last line of stdout, as JSON: ``{"path": ...}``, or
``{"error": ..., "cache": true|false}`` for a one-line error the parent raises again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vidstyle.errors import ModelError, VidstyleError
from vidstyle.models.backends import CacheUnwritable


def export_in_child(weights: str | os.PathLike, name: str, key: str,
                    folder: str | os.PathLike) -> Path:
    """Load the model file ``weights`` in a child process and write its export as
    :func:`vidstyle.models.backends.export_path` (``name``, ``key``, ``folder``) names it.

    ModelError for anything wrong with the file or its export, CacheUnwritable where the cache cannot
    take the file, as if the export had run here."""
    command = [sys.executable, "-m", __name__, os.fsencode(weights), name, key, os.fsencode(folder)]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, env=_child_env())
    lines = done.stdout.decode("utf-8", "surrogateescape").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        report = {}
    if done.returncode == 0 and "path" in report:
        return Path(report["path"])
    if "error" in report:
        raise (CacheUnwritable if report.get("cache") else ModelError)(report["error"])
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    why = said[-1] if said else f"exit status {done.returncode}"
    raise ModelError(f"exporting {name} for onnxruntime failed in its own process: {why}")


def _child_env() -> dict[str, str]:
    """This process's environment, with the folder this vidstyle was imported from first on
    PYTHONPATH: the child runs the same package even where it is not installed (``python
    path/to/infer.py`` from a clone, run in another folder)."""
    home = os.fspath(Path(__file__).resolve().parents[2])      # the folder holding vidstyle/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [home, env.get("PYTHONPATH")]))
    return env


def main(argv: list[str] | None = None) -> int:
    weights, name, key, folder = sys.argv[1:] if argv is None else argv
    try:
        from vidstyle.models.backends import cached_export
        from vidstyle.models.zoo import ModelEntry, load_model

        loaded = load_model(ModelEntry(name, Path(weights), "path"))
        path = cached_export(loaded.net, folder, name=name, key=key, card=loaded.card.to_dict())
    except CacheUnwritable as exc:
        report = {"error": str(exc), "cache": True}
    except VidstyleError as exc:
        report = {"error": str(exc), "cache": False}
    else:
        report = {"path": os.fspath(path)}
    # json.dumps writes a name's undecodable bytes (surrogate escapes) as \udcXX, which loads back.
    print(json.dumps(report))
    return 0 if "path" in report else 2


if __name__ == "__main__":
    sys.exit(main())
