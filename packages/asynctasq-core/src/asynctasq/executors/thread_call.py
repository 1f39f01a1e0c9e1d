"""One task call on a thread of the pool, which the worker may give up on.

Python cannot stop a thread safely: an exception raised in it from outside
(``PyThreadState_SetAsyncExc``) can land between a lock's ``acquire()`` and its ``try``,
leave the lock held for good, and freeze the worker on its next log line. So a call that
has started runs to its end; one still waiting for a free thread when the worker gives up
on it never starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()  # giving up and starting never cross


class Abandoned(Exception):
    """The worker gave up on the call before a thread took it: it did not run."""


class ThreadCall:
    """`fn`, run on a thread of a pool, that the worker may abandon before it starts."""

    __slots__ = ("_abandoned", "_fn", "_on_start", "_started")

    def __init__(self, fn: Callable[[], Any], on_start: Callable[[], object] | None = None) -> None:
        self._fn = fn
        self._on_start = on_start
        self._started = False
        self._abandoned = False

    def __call__(self) -> Any:
        with _lock:
            if self._abandoned:
                raise Abandoned
            self._started = True
        if self._on_start is not None:  # called on the thread, as the call starts
            self._on_start()
        return self._fn()

    def give_up(self) -> bool:
        """Stop the call from starting if it has not yet; whether it had (it runs on)."""
        with _lock:
            if not self._started:
                self._abandoned = True
            return self._started


__all__ = ["Abandoned", "ThreadCall"]
