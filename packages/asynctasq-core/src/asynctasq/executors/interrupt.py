"""Stopping a task's thread: an exception raised inside it at its next Python instruction.

Python cannot kill a thread, but CPython can raise an exception in one
(``PyThreadState_SetAsyncExc``, as Dramatiq's time limits do). It takes effect when the
thread next runs Python code: a blocking call (``time.sleep``, a socket read) is not cut
short, the exception comes as soon as it returns, so nothing the task would do after it
happens. The exception derives from `BaseException`, so ``except Exception`` in task code
does not swallow it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from asynctasq.errors import ThreadInterrupted

_lock = threading.Lock()  # an interrupt and the end of a call never cross


class InterruptibleCall:
    """`fn` run on a thread of a pool, which the worker may interrupt while it runs (and
    only then: never the call the thread runs next)."""

    __slots__ = ("_abandoned", "_done", "_fn", "_thread")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._thread: int | None = None
        self._done = False
        self._abandoned = False

    def __call__(self) -> Any:
        with _lock:
            if self._abandoned:  # interrupted while it waited for a free thread
                raise ThreadInterrupted
            self._thread = threading.get_ident()
        try:
            return self._fn()
        finally:
            with _lock:
                self._done = True

    def interrupt(self) -> bool:
        """Raise `ThreadInterrupted` in the thread running the call. False when there is
        nothing to wait for: it ended already, or it had not started (it never will now),
        or this Python cannot interrupt threads."""
        with _lock:
            if self._thread is None:
                self._abandoned = True
                return False
            if self._done:
                return False
            set_async_exc = getattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc", None)
            if set_async_exc is None:  # pragma: no cover - not CPython
                return False
            hit = set_async_exc(ctypes.c_ulong(self._thread), ctypes.py_object(ThreadInterrupted))
            return bool(hit == 1)


__all__ = ["InterruptibleCall", "ThreadInterrupted"]
