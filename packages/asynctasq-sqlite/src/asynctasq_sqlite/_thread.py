"""A dedicated thread that runs blocking calls one at a time, in order, for an event loop.

Why not ``loop.run_in_executor(ThreadPoolExecutor(max_workers=1), ...)``: that pays one
thread wake-up and one event-loop wake-up per call (about 0.1-0.2 ms each on a busy host),
which capped a worker's ack rate. Here the thread takes every call queued while it was busy
as one batch, hands the batch to a runner (which may, e.g., commit it as one transaction),
and answers the whole batch with one ``call_soon_threadsafe``: under load (many tasks
acking at once) a wake-up is shared by many calls. Order is still submission order, so a
call submitted after another sees its effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from asynctasq.utils.affinity import unpin_thread

T = TypeVar("T")

Outcome = tuple[bool, Any]
"""``(True, result)`` or ``(False, exception)``."""


class Job(NamedTuple):
    """One call in a batch, as the batch runner sees it."""

    fn: Callable[[], Any]
    groupable: bool
    """The caller allows running it in one transaction with its neighbours."""


BatchRunner = Callable[[Sequence[Job]], list[Outcome]]


def outcome_of(fn: Callable[[], Any]) -> Outcome:
    """Run `fn` and capture its result or exception."""
    try:
        return True, fn()
    except BaseException as exc:  # handed to the caller, never lost
        return False, exc


def run_each(jobs: Sequence[Job]) -> list[Outcome]:
    """The plain batch runner: one call after another."""
    return [outcome_of(job.fn) for job in jobs]


class _Call(NamedTuple):
    fn: Callable[[], Any]
    groupable: bool
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
        run_batch: Runs the calls that queued up together and returns one outcome per
            call, in order; it must not raise.
    """

    def __init__(self, name: str, run_batch: BatchRunner = run_each) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._run_batch = run_batch
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[], T], *, groupable: bool = False) -> T:
        """Run `fn()` on the thread and return its result (or raise its exception).

        If the caller is cancelled before the thread starts `fn`, `fn` does not run.

        Raises:
            RuntimeError: The thread was stopped.
        """
        if self._stopped:
            raise RuntimeError("the connection thread is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(fn, groupable, future, loop))
        return await future

    def submit(self, fn: Callable[[], object], *, groupable: bool = False) -> None:
        """Queue `fn()` without waiting for it; ignored once the thread is stopped."""
        if not self._stopped:
            self._calls.put(_Call(fn, groupable, None, None))

    def stop(self) -> None:
        """Let queued calls finish, then end the thread (does not wait for it)."""
        if not self._stopped:
            self._stopped = True
            self._calls.put(None)

    def _serve(self) -> None:
        unpin_thread()  # opened by a worker pinned to one CPU (--pin-cpus): SQL on every CPU
        calls = self._calls
        while True:
            batch = [calls.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(calls.get_nowait())
            # A caller cancelled before we started gave up on its call: do nothing for it.
            live = [
                c
                for c in batch
                if c is not None and not (c.future is not None and c.future.cancelled())
            ]
            if live:
                self._answer(live)
            if None in batch:
                return

    def _answer(self, live: list[_Call]) -> None:
        try:
            outcomes = self._run_batch([Job(c.fn, c.groupable) for c in live])
        except BaseException as exc:  # a broken runner must not strand the callers
            outcomes = [(False, exc)] * len(live)
        answers: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for call, (ok, value) in zip(live, outcomes, strict=True):
            if call.future is not None and call.loop is not None:
                answers.setdefault(call.loop, []).append((call.future, ok, value))
        for loop, settled in answers.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, settled)


__all__ = ["BatchRunner", "Job", "Outcome", "SerialThread", "outcome_of", "run_each"]
