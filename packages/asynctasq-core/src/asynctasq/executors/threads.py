"""A thread pool whose threads never keep the process alive.

`concurrent.futures.ThreadPoolExecutor` joins its threads at interpreter exit, so one
blocking task that ran past the shutdown deadline (and was given back to the queue) would
hold the worker process open until it returned. Task threads here are daemon threads: when
the worker is done, the process exits.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from asynctasq.utils.affinity import unpin_thread

P = ParamSpec("P")
T = TypeVar("T")

_STOP = object()

TASK_THREAD_PREFIX = "asynctasq-task"
"""Name prefix of the threads that run a worker's thread-mode tasks."""


def stuck_task_threads(grace: float = 0.2) -> list[str]:
    """Names of task threads still running after `grace` seconds (idle ones end by then: the
    worker's pool told them to when it closed). Short, because it comes on top of the
    shutdown deadline that such a thread already outlived.

    A worker's process exits even with such threads (they are daemons); the CLI names them so
    the operator knows which blocking calls outlived the shutdown deadline.
    """
    deadline = time.monotonic() + grace
    threads = [t for t in threading.enumerate() if t.name.startswith(TASK_THREAD_PREFIX)]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


class DaemonThreadPool(Executor):
    """Runs submitted calls on up to `max_workers` daemon threads, started as needed."""

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "task") -> None:
        self.max_workers = max_workers or 32
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            self._work.put((future, fn, args, kwargs))
            if self._idle == 0 and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._run, name=f"{self._prefix}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1 if self._idle else 0
        return future

    def _run(self) -> None:
        unpin_thread()  # a pinned worker's task threads run on every CPU
        while True:
            item = self._work.get()
            if item is _STOP:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        item[0].cancel()
            for _ in self._threads:
                self._work.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()
