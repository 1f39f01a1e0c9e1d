"""pebble's `ProcessPool`, told to wait for a dead child's word on which task it took.

pebble learns that a child took a task from a message the child sends (read by one thread
of the pool) and that a child died from polling it (another thread). When the task ends the
child at once (``os._exit``, a signal, the out-of-memory killer) and the reading thread is
late, as on a loaded machine, the dead child has no task yet: pebble then either forgets the
death (the task never ends) or, when no child has a task, declares the whole pool broken
(every task in it fails with ``BrokenProcessPool`` and it takes no more).

`ProcessPool` here keeps such a death for `ACK_GRACE` seconds and gives it to the task as
soon as the message saying the child took it has been read; only a death still unmatched
then gets pebble's own verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from pebble import ProcessExpired
from pebble import ProcessPool as _PebblePool
from pebble.common.types import Result, ResultStatus
from pebble.pool.process import PoolManager, dictionary_values

ACK_GRACE = 5.0
"""Seconds a dead child's task may take to be known before pebble decides without it."""


class _PatientPoolManager(PoolManager):
    """Runs in pebble's manager thread only (`update_workers` and what it calls)."""

    def __init__(self, context: Any, mp_context: Any) -> None:
        super().__init__(context, mp_context)
        self._unmatched: dict[int, tuple[int | None, float]] = {}  # pid -> (exit code, until)

    def update_workers(self) -> None:
        for pid, (code, until) in list(self._unmatched.items()):
            if self._settle(pid, code):
                del self._unmatched[pid]
            elif time.monotonic() >= until:
                del self._unmatched[pid]
                super().handle_worker_expiration((pid, code))  # may declare the pool broken
        super().update_workers()  # type: ignore[no-untyped-call]

    def handle_worker_expiration(self, expiration: tuple[int, int | None]) -> None:
        pid, code = expiration
        if not self._settle(pid, code):
            self._unmatched[pid] = (code, time.monotonic() + ACK_GRACE)

    def _settle(self, pid: int, code: int | None) -> bool:
        """End the task child `pid` was running with its death, if that task is known."""
        for task in dictionary_values(self.task_manager.tasks):
            if task.worker_id == pid:
                error = ProcessExpired("Abnormal termination", code=code, pid=pid)  # type: ignore[no-untyped-call]
                self.task_manager.task_done(task.id, Result(ResultStatus.ERROR, error))
                return True
        return False


class ProcessPool(_PebblePool):
    """pebble's `ProcessPool` with `_PatientPoolManager` (the same arguments)."""

    def __init__(
        self,
        *,
        max_workers: int,
        max_tasks: int,
        initializer: Callable[..., Any],
        initargs: Iterable[Any],
        context: Any,
    ) -> None:
        super().__init__(max_workers, max_tasks, initializer, initargs, context)
        self._pool_manager = _PatientPoolManager(self._context, context)


__all__ = ["ACK_GRACE", "ProcessPool"]
