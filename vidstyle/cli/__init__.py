"""Command-line front end: ``vidstyle <command> ...``.

Each command group lives in its own module here and exposes ``register(subparsers)``, which adds its
parser(s) and sets ``func`` to a handler taking the parsed arguments and returning an exit status.
Handlers parse and call library functions; they hold no logic of their own. This is the one place where
:class:`vidstyle.errors.VidstyleError` becomes a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from vidstyle import __version__
from vidstyle.errors import VidstyleError

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


def set_openmp_wait_policy() -> None:
    """Make torch's OpenMP threads wait passively, unless the user chose a policy.

    Spinning OpenMP threads starve any other thread that wants the core (our decoder and encoder, a
    flow worker, another program): docs/inference.md, "How a job runs". libgomp reads the variable
    once, when torch is first imported, so every command gets it here, before any command module is
    imported.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser() -> argparse.ArgumentParser:
    from vidstyle.cli import distill, export, flows, infer, live, metrics, serve, train

    parser = argparse.ArgumentParser(
        prog="vidstyle",
        description="Temporally consistent neural style transfer for video.",
    )
    parser.add_argument("--version", action="version", version=f"vidstyle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (flows, train, distill, infer, export, metrics, live, serve):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    set_openmp_wait_policy()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VidstyleError as exc:
        print(f"vidstyle: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("vidstyle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`vidstyle models | head`): stop quietly, as `ls | head`
        # does, and keep Python's final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
