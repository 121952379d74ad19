"""``python -m vidstyle ...`` is the ``vidstyle`` command."""

from vidstyle.cli import run

run()
