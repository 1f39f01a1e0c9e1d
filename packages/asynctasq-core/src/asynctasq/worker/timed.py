"""The worker's side of expiring and unique tasks.

* A task taken after its expiry is not run: it is dead-lettered with a `TaskExpiredError`
  (or acknowledged and dropped when it says ``on_expiry="drop"``), recorded as ``expired``
  when tracked, announced as ``task-expired`` when events are on, and counted per queue
  (`asynctasq.core.expired_counts`, batched: a flood of expired tasks costs one counter
  update per queue every `COUNT_DELAY` seconds, not one per task).
* A unique task's claim is released when the task ends (success, dead letter, expiry,
  cancellation), in the background, so the slot is free at once; a retry keeps it.

The worker asks for these only when a message carries an expiry or a claim: other tasks pay
one truth test each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from asynctasq.core import expired_counts
from asynctasq.core.unique import holds_claims
from asynctasq.drivers.base import ClaimStore, Driver
from asynctasq.errors import TaskExpiredError
from asynctasq.lifecycle.events import EventType
from asynctasq.lifecycle.status import TaskState, clip
from asynctasq.middleware import call_hooks
from asynctasq.worker import outcomes
from asynctasq.worker.failures import failure_from, printable

if TYPE_CHECKING:
    from asynctasq.worker.job import Job
    from asynctasq.worker.lifecycle import Lifecycle
    from asynctasq.worker.worker import Worker

log = logging.getLogger("asynctasq.worker")

COUNT_DELAY = 0.2
"""Seconds expired tasks are gathered before their queue's counter is updated."""


class TimedTasks:
    """Expiry and unique-claim duties of one worker."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._pending_counts: dict[str, int] = {}
        self._counting = False

    # -- unique claims -----------------------------------------------------------------------
    def release_claim(self, key: str, task_id: str) -> None:
        """Release the claim `key` held by task `task_id`, in the background (only this
        holder's: a newer dispatch holding the key keeps it)."""
        driver = self._worker.driver
        if holds_claims(driver):
            self._background(self._release(cast(ClaimStore, driver), key, task_id))

    @staticmethod
    async def _release(store: ClaimStore, key: str, task_id: str) -> None:
        try:
            await store.release_claim(key, task_id)
        except Exception as exc:
            # Its ttl frees it: until then, dispatches of this key return this task's id.
            log.warning(
                "releasing the unique key of task [%s] failed (%s: %s); it frees itself "
                "after its unique_for",
                printable(task_id),
                type(exc).__name__,
                exc,
            )

    # -- expiry --------------------------------------------------------------------------------
    async def expire(self, job: Job, lifecycle: Lifecycle | None) -> None:
        """Settle a task taken after its expiry, without running it."""
        worker, env = self._worker, job.envelope
        driver = worker.driver
        assert env is not None and driver is not None
        at = datetime.fromtimestamp(env.expires_at, UTC).isoformat(timespec="milliseconds")
        late = time.time() - env.expires_at
        exc = TaskExpiredError(
            f"task {env.task} expired at {at} and was taken {late:.3f} s later: not run"
        )
        if env.drop_expired:
            if not await worker._settle("ack", lambda: driver.ack([job.delivery])):
                return
            log.debug("task %s [%s] expired and was dropped", printable(env.task), job.task_id)
            failure = failure_from(exc)
            await outcomes.keep(
                driver, job, lambda: outcomes.failure_outcome(failure), worker._settle
            )
            if env.unique_key:
                self.release_claim(env.unique_key, job.task_id)
        elif not await worker._dead_letter(
            job, exc, "expired before it started", level=logging.WARNING
        ):
            return  # left to the lease: expired again at its next delivery
        worker.stats.expired += 1
        job.finished = True
        if worker.middleware:
            call_hooks(worker.middleware, "after_expire", job, reverse=True)
        if lifecycle is not None:
            error = {"error_type": type(exc).__name__, "error_message": clip(str(exc))}
            lifecycle.record(job, TaskState.EXPIRED, finished_at=time.time(), **error)
            lifecycle.emit(EventType.TASK_EXPIRED, job, expires_at=env.expires_at, **error)
        self._count(job.queue, driver)

    def _count(self, queue: str, driver: Driver) -> None:
        if not holds_claims(driver):
            return  # SQS, RabbitMQ: no counter (the dead letters still show)
        self._pending_counts[queue] = self._pending_counts.get(queue, 0) + 1
        if not self._counting:
            self._counting = True
            self._background(self._write_counts(cast(ClaimStore, driver)))

    async def _write_counts(self, store: ClaimStore) -> None:
        await asyncio.sleep(COUNT_DELAY)
        counts, self._pending_counts = self._pending_counts, {}
        self._counting = False
        for queue, count in counts.items():
            try:
                if await expired_counts.add_expired(store, queue, count):
                    continue
                problem = "too many workers updating it at once"
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning(
                "%d expired task(s) of queue %s were not counted (%s)",
                count,
                printable(queue),
                problem,
            )

    def _background(self, work: Any) -> None:
        # Kept with the worker's other background work: shutdown waits for it.
        task = asyncio.get_running_loop().create_task(work)
        background = self._worker._background
        background.add(task)
        task.add_done_callback(background.discard)


__all__ = ["COUNT_DELAY", "TimedTasks"]
