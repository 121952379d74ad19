"""Threads between the stages of a job: a producer running ahead of its consumer, and a consumer
running behind its producer, each joined to the caller by a small bounded queue.

:func:`in_background` iterates a source (decoding) in a thread; :class:`BackgroundSink` hands items
to a function (encoding) in a thread. Both pass an exception in their thread to the caller, in
order, and stop their thread when the caller leaves early (break, exception, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; polling so that a stopped consumer frees us."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def in_background(items: Iterable[T], depth: int) -> Iterator[T]:
    """Iterate ``items`` in a daemon thread, at most ``depth`` items ahead of the caller.

    An exception in the producer is raised here after the items that came before it. Leaving the
    loop early (break, exception, Ctrl-C) stops the producer and closes its iterator.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not _put(q, (item, None), stop):
                    return
            _put(q, (_END, None), stop)
        except BaseException as exc:  # handed to the consumer, which re-raises it in order
            _put(q, (_END, exc), stop)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="vidstyle-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


class BackgroundSink:
    """Call ``consume(item)`` for each :meth:`put` item in a daemon thread, ``depth`` items behind.

    An exception in ``consume`` is raised by the next :meth:`put` or by :meth:`close`.
    """

    def __init__(self, consume: Callable[[T], None], depth: int, name: str = "vidstyle-encode"):
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._error is not None:
                return
            try:
                self._consume(item)
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc
                self._stop.set()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._check()
        _put(self._queue, item, self._stop)
        self._check()

    def close(self, wait: bool = True) -> None:
        """Finish the queued items (``wait``) or drop them, stop the thread, raise its error."""
        if not wait:
            self._stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_END, timeout=0.1)
                break
        self._thread.join()
        if wait:
            self._check()
