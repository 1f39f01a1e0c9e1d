"""Dispatching from code that is not async: Flask and Django views, scripts, commands.

Every sync dispatch of a process goes through one event loop that AsyncTasQ runs in a
background thread ("asynctasq-dispatch"), started on first use. The drivers built on it keep
their connections (pools) open between calls, so a web worker pays no connect per request,
and any number of threads may dispatch at once: their calls are coroutines on that one loop.
At interpreter exit (``atexit``) the drivers are closed on that loop, then the loop and its
thread stop. A process forked after first use (a pre-forking server) starts a loop of its own.

From inside a running event loop, use the async methods (``await task.dispatch()``): a sync
call there would block the loop it runs on, so it is refused.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures

# Imported now, not when uvloop first needs it: a first sync dispatch from an exit hook starts
# the loop during shutdown, when a module that registers an exit hook of its own (this one
# does) can no longer be imported.
import concurrent.futures.thread
import logging
import os
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from asynctasq.core.results import TaskId
from asynctasq.core.task import BaseTask
from asynctasq.runner import loop_factory

T = TypeVar("T")

log = logging.getLogger("asynctasq")

THREAD_NAME = "asynctasq-dispatch"
CLOSE_TIMEOUT = 10.0
"""Seconds the drivers get to close at interpreter exit."""


class _LoopThread:
    """One event loop in a daemon thread, started on first use, stopped at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._atexit_registered = False

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread, while it runs."""
        return self._thread

    def _ensure(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # After a fork the parent's thread does not exist here: start our own.
                factory = loop_factory()
                new_loop: asyncio.AbstractEventLoop = (
                    factory() if factory is not None else asyncio.new_event_loop()
                )
                started = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(new_loop, started), name=THREAD_NAME, daemon=True
                )
                thread.start()
                started.wait()
                self._loop, self._thread, self._pid = new_loop, thread, os.getpid()
                if not self._atexit_registered:
                    atexit.register(self.stop)
                    self._atexit_registered = True
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run `coroutine` on the loop and wait for its result (at most `timeout` seconds)."""
        try:
            loop = self._ensure()
        except BaseException:
            coroutine.close()  # never started: no "never awaited" warning on top of the error
            raise
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            # Waited for apart from its outcome: a TimeoutError the coroutine raises itself
            # (a result not there in time) is its own, not this wait running out.
            concurrent.futures.wait([future], timeout)
        except BaseException:  # KeyboardInterrupt while waiting: the call stops there too
            future.cancel()
            raise
        if not future.done():
            future.cancel()
            raise TimeoutError(f"the dispatch did not finish within {timeout} s")
        if future.cancelled() and self._loop is not loop:  # closed under the call
            raise RuntimeError(
                "the sync dispatch loop was closed (interpreter exit, or close()) while this "
                "call ran: it may or may not have reached the broker"
            )
        return future.result()

    def stop(self) -> None:
        """Close the drivers the loop built, then stop the loop and its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._pid != os.getpid():
                return
            self._loop = self._thread = None
        closing = asyncio.run_coroutine_threadsafe(_wind_down(), loop)
        try:
            closing.result(CLOSE_TIMEOUT)
        except Exception:  # closing is best effort at exit
            log.debug("closing the dispatch drivers failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_TIMEOUT)
        if not thread.is_alive():
            loop.close()


async def _wind_down() -> None:
    from asynctasq.drivers.connections import close_drivers

    await close_drivers()
    # Whatever a driver left running (a listener, a reconnect) ends here, not as a
    # "Task was destroyed but it is pending" when the loop is closed.
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for other in others:
        other.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


_runner = _LoopThread()


def _refuse_in_loop(method: str, instead: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{method} was called from a running event loop, where it would block the loop: "
        f"use {instead} there"
    )


def dispatch_sync(task: BaseTask[T], *, timeout: float | None = None) -> TaskId[T]:
    """Queue `task` from sync code and return its id. See `BaseTask.dispatch_sync`."""
    _refuse_in_loop("dispatch_sync()", "`await task.dispatch()`")
    from asynctasq.core.dispatch import dispatch

    return _runner.run(dispatch(task), timeout)


def run_sync(coroutine: Coroutine[Any, Any, T], method: str, instead: str) -> T:
    """Run `coroutine` (a task id's wait, status or cancel) on the sync dispatch loop and
    return what it returns; refused from a running loop (`method`: what was called,
    `instead`: what to await there)."""
    try:
        _refuse_in_loop(method, instead)
    except RuntimeError:
        coroutine.close()  # never awaited: no "was never awaited" warning on top
        raise
    return _runner.run(coroutine, None)


def dispatch_many_sync(
    tasks: Iterable[BaseTask[Any]], *, timeout: float | None = None
) -> list[TaskId[Any]]:
    """Queue several tasks from sync code (one batch call per driver); return their ids.

    Safe to call from many threads at once; connections are kept between calls (see this
    module's docstring).

    Args:
        tasks: The tasks to queue, e.g. ``[send(a), send(b)]``.
        timeout: Seconds to wait for the queueing at most (None: as long as it takes).

    Raises:
        RuntimeError: called from a running event loop (use ``await dispatch_many(...)``).
        SerializationError: an argument cannot be serialized; nothing is queued then.
        TimeoutError: not queued within `timeout` (the tasks may still be queued).
    """
    _refuse_in_loop("dispatch_many_sync()", "`await asynctasq.dispatch_many(...)`")
    from asynctasq.core.dispatch import dispatch_many

    return _runner.run(dispatch_many(list(tasks)), timeout)


def dispatch_thread() -> threading.Thread | None:
    """The thread of the sync dispatch loop, while it runs (for tests and diagnostics)."""
    return _runner.thread


def close() -> None:
    """Close the sync dispatch loop's drivers and stop its thread now (it starts again on
    the next sync dispatch). Called at interpreter exit on its own."""
    _runner.stop()


__all__ = ["close", "dispatch_many_sync", "dispatch_sync", "dispatch_thread", "run_sync"]
