"""-q is accepted by every command, and quiets what it promises to."""

import argparse

from tests.testmodel import save_untrained
from vidstyle.cli import build_parser, main


def _leaf_commands(parser, path=()):
    """(command words, parser) of every runnable command, e.g. (("flows", "inspect"), parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_commands(child, (*path, name))


def test_every_command_takes_q():
    commands = dict(_leaf_commands(build_parser()))
    assert {("infer",), ("live",), ("models",), ("train",), ("metrics",), ("flows", "precompute"),
            ("flows", "inspect"), ("flows", "show")} <= set(commands)
    for words, parser in commands.items():
        flags = {s for a in parser._actions for s in a.option_strings}
        assert "-q" in flags, " ".join(words)


def test_models_q_prints_the_names_only(capsys, tmp_path, monkeypatch):
    save_untrained(tmp_path, "quietnet")
    monkeypatch.setenv("VIDSTYLE_MODELS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["models", "-q"]) == 0
    lines = capsys.readouterr().out.split()
    assert lines[0] == "quietnet" and all(" " not in line for line in lines)
