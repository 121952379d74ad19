"""What every long command does around its work: SIGTERM (kill, timeout, a scheduler's stop) unwinds
like Ctrl-C, so temporaries are removed and runs say how to resume, and warnings print as one line."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import warnings
from collections.abc import Iterator


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"vidstyle: warning: {message}", file=sys.stderr)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread while inside; only the main thread may
    set a handler, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """SIGTERM as Ctrl-C, and one-line warnings, for the duration of a command's work."""
    with warnings.catch_warnings(), terminate_as_interrupt():
        warnings.showwarning = one_line_warning
        yield
