"""One log line per task started and finished (``asynctasq worker --log-tasks``).

Lines go to the ``asynctasq.tasks`` logger at INFO, with the task's name, id, queue and
attempt (and, once it ended, its duration and outcome) as record attributes too: the JSON
log format prints them as fields (``task``, ``task_id``, ``queue``, ``attempt``,
``duration``, ``outcome``, ``error``). Names and ids come from the message: they are
escaped before they are logged.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from asynctasq.middleware import Middleware
from asynctasq.worker.failures import printable

if TYPE_CHECKING:
    from asynctasq.worker.job import Job

log = logging.getLogger("asynctasq.tasks")


def _fields(job: Job, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "task": printable(job.task_name),
        "task_id": printable(job.task_id),
        "queue": printable(job.queue),
        "attempt": job.attempts + 1,
    }


class TaskLog(Middleware):
    """Logs ``task-started``, ``task-succeeded``, ``task-failed``, ``task-cancelled`` and
    ``task-released`` lines (failures at INFO too: the worker's own warning says what
    happens next, a retry or a dead letter)."""

    def before_process(self, job: Job) -> None:
        """Log that `job` starts."""
        if not log.isEnabledFor(logging.INFO):
            return
        f = _fields(job, "task-started")
        log.info(
            "task %s [%s] started (queue %s, attempt %d)",
            f["task"],
            f["task_id"],
            f["queue"],
            f["attempt"],
            extra=f,
        )

    def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
        """Log how `job` ended and how long it ran."""
        if not log.isEnabledFor(logging.INFO):
            return
        duration = round(time.monotonic() - job.started_at, 6)
        if exception is None:
            f = _fields(job, "task-succeeded")
            f.update(duration=duration, outcome="succeeded")
            log.info(
                "task %s [%s] succeeded in %.3f s (queue %s, attempt %d)",
                f["task"],
                f["task_id"],
                duration,
                f["queue"],
                f["attempt"],
                extra=f,
            )
            return
        f = _fields(job, "task-failed")
        f.update(duration=duration, outcome="failed", error=type(exception).__name__)
        log.info(
            "task %s [%s] failed in %.3f s: %s (queue %s, attempt %d)",
            f["task"],
            f["task_id"],
            duration,
            f["error"],
            f["queue"],
            f["attempt"],
            extra=f,
        )

    def after_cancel(self, job: Job) -> None:
        """Log that `job` was cancelled."""
        self._ended(job, "cancelled")

    def after_release(self, job: Job) -> None:
        """Log that `job` was given back unfinished (shutdown)."""
        self._ended(job, "released")

    def _ended(self, job: Job, outcome: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        f = _fields(job, f"task-{outcome}")
        f["outcome"] = outcome
        log.info(
            "task %s [%s] %s (queue %s, attempt %d)",
            f["task"],
            f["task_id"],
            outcome,
            f["queue"],
            f["attempt"],
            extra=f,
        )


__all__ = ["TaskLog"]
