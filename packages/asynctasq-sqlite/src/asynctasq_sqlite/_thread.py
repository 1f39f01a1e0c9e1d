"""A dedicated thread that runs blocking calls one at a time, in order, for an event loop.

Why not ``loop.run_in_executor(ThreadPoolExecutor(max_workers=1), ...)``: that pays one
thread wake-up and one event-loop wake-up per call (about 0.1-0.2 ms each on a busy host),
which capped a worker's ack rate. Here the thread takes every call queued while it was busy
as one batch, and answers the whole batch with one ``call_soon_threadsafe``: under load
(many tasks acking at once) a wake-up is shared by many calls. Order is still submission
order, so a call submitted after another sees its effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


class _Call(NamedTuple):
    fn: Callable[[], Any]
    future: asyncio.Future[Any] | None  # None: nobody waits for the answer
    loop: asyncio.AbstractEventLoop | None


_Answer = tuple["asyncio.Future[Any]", bool, Any]


def _settle(answers: list[_Answer]) -> None:
    for future, ok, value in answers:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class SerialThread:
    """Runs callables on one daemon thread, one at a time, in submission order.

    Args:
        name: The thread's name (shown in stack dumps and profilers).
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the thread and return its result (or raise its exception).

        If the caller is cancelled before the thread starts `fn`, `fn` does not run.

        Raises:
            RuntimeError: The thread was stopped.
        """
        if self._stopped:
            raise RuntimeError("the connection thread is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(fn, future, loop))
        return await future

    def submit(self, fn: Callable[[], object]) -> None:
        """Queue `fn()` without waiting for it; ignored once the thread is stopped."""
        if not self._stopped:
            self._calls.put(_Call(fn, None, None))

    def stop(self) -> None:
        """Let queued calls finish, then end the thread (does not wait for it)."""
        if not self._stopped:
            self._stopped = True
            self._calls.put(None)

    def _serve(self) -> None:
        calls = self._calls
        while True:
            batch = [calls.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(calls.get_nowait())
            answers: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
            stop = False
            for call in batch:
                if call is None:
                    stop = True
                    continue
                future = call.future
                if future is not None and future.cancelled():
                    continue  # the caller gave up before we started: do nothing
                try:
                    answer: _Answer | None = None
                    result = call.fn()
                    if future is not None:
                        answer = (future, True, result)
                except BaseException as exc:  # handed to the caller, never lost
                    if future is not None:
                        answer = (future, False, exc)
                if answer is not None and call.loop is not None:
                    answers.setdefault(call.loop, []).append(answer)
            for loop, settled in answers.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, settled)
            if stop:
                return


__all__ = ["SerialThread"]
