"""Asking about tasks and workers, and cancelling tasks: the public lifecycle API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum

from asynctasq.core.results import canonical_task_id
from asynctasq.drivers.base import (
    MAX_WORKER_RECORDS,
    Driver,
    StatusStore,
    StatusWrite,
    WorkerRegistry,
)
from asynctasq.drivers.connections import get_driver
from asynctasq.drivers.registry import use_one_of
from asynctasq.lifecycle.events import event_log
from asynctasq.lifecycle.status import TaskState, TaskStatus
from asynctasq.lifecycle.workers import WorkerInfo

CANCELS = "cancels"
"""The name of the log of cancel requests."""
CANCEL_RETENTION = 7 * 86400.0
"""Seconds a cancel request is kept: a queued task cancelled within this time never runs."""
ACTIVE_TTL = 30 * 86400.0
"""Seconds the record of a task that has not finished is kept (a safety net)."""
DEFAULT_TRACK_TTL = 86400.0
"""Seconds the record of a finished task is kept, unless the task says otherwise."""


class CancelOutcome(StrEnum):
    """What `cancel` did."""

    REQUESTED = "requested"
    """The cancellation was recorded: a queued task will not run; a running one is stopped."""
    ALREADY_FINISHED = "already-finished"
    """The task had finished already: nothing was changed."""


def status_store(driver: Driver) -> StatusStore:
    """`driver` as a `StatusStore`.

    Raises:
        TypeError: the driver cannot track tasks (names the drivers that can).
    """
    if not isinstance(driver, StatusStore):
        raise TypeError(
            f"{type(driver).__name__} cannot track task status; "
            f"{use_one_of(StatusStore)} or drop track=True"
        )
    return driver


def record_write(
    task_id: str, queue: str, state: TaskState, record: bytes, keep: float
) -> StatusWrite:
    """The write that stores an encoded record: kept `keep` seconds once the task finished,
    at least `ACTIVE_TTL` before."""
    ttl = keep if state.finished else max(ACTIVE_TTL, keep)
    return StatusWrite(task_id, queue, str(state), record, ttl)


def write_for(status: TaskStatus, keep: float) -> StatusWrite:
    """The write that stores `status` (see `record_write`)."""
    return record_write(status.task_id, status.queue, status.state, status.encode(), keep)


async def status(task_id: str, *, driver: str | Driver | None = None) -> TaskStatus | None:
    """The status of tracked task `task_id`, or None when nothing is known of it.

    Args:
        task_id: The id `dispatch()` returned.
        driver: The driver the task went to (a name or instance); default: the configured
            one.

    Raises:
        TypeError: the driver cannot track tasks.
    """
    store = status_store(await get_driver(driver))
    raw = await store.read_status(str(task_id))
    return None if raw is None else TaskStatus.decode(raw)


async def list_tasks(
    *,
    queue: str | None = None,
    state: TaskState | str | None = None,
    limit: int = 100,
    driver: str | Driver | None = None,
) -> list[TaskStatus]:
    """Tracked tasks, most recently changed first, filtered by queue and/or state.

    Raises:
        TypeError: the driver cannot track tasks.
        ValueError: `state` is not a `TaskState` value.
    """
    wanted = None if state is None else str(TaskState(state))
    store = status_store(await get_driver(driver))
    raws = await store.list_statuses(queue=queue, state=wanted, limit=limit)
    return [s for s in map(TaskStatus.decode, raws) if s is not None]


async def retry_dead_letters(
    driver: Driver, *, queue: str | None = None, task_ids: Sequence[str] | None = None
) -> int:
    """`Driver.retry_dead_letters`, and the tracked tasks among `task_ids` read ``queued``
    again (attempts 0, no error) instead of ``failed`` until a worker takes them.

    The records are rewritten before the letters move: after, a worker may already have
    taken one and written ``running``, which ``queued`` must not overwrite.

    Without `task_ids` (every letter of `queue`, or of every queue), the records of the
    oldest `MAX_REQUEUED_RECORDS` letters are rewritten; later ones read ``failed`` until a
    worker takes them. All of them move in one driver call either way.

    Returns:
        How many dead letters went back to their queues.
    """
    before: list[StatusWrite] = []
    if (task_ids is None or task_ids) and isinstance(driver, StatusStore):
        if task_ids is None:
            letters = await driver.list_dead_letters(queue=queue, limit=MAX_REQUEUED_RECORDS)
        else:
            wanted = list(dict.fromkeys(str(t) for t in task_ids))[:MAX_REQUEUED_RECORDS]
            letters = await driver.list_dead_letters(
                queue=queue, task_ids=wanted, limit=len(wanted)
            )
        queued: list[StatusWrite] = []
        raws = await _read_statuses(driver, [letter.task_id for letter in letters])
        for raw in raws:
            current = None if raw is None else TaskStatus.decode(raw)
            if current is None or current.state != TaskState.FAILED:
                continue
            again = current.replace(
                state=TaskState.QUEUED,
                attempts=0,
                started_at=None,
                finished_at=None,
                error_type=None,
                error_message=None,
                progress=None,
                progress_message=None,
            )
            queued.append(write_for(again, DEFAULT_TRACK_TTL))
            before.append(write_for(current, DEFAULT_TRACK_TTL))
        if queued:
            await driver.write_statuses(queued)
    try:
        return await driver.retry_dead_letters(queue=queue, task_ids=task_ids)
    except BaseException:
        if before:  # nothing moved, as far as anyone knows: the records say so again
            with contextlib.suppress(Exception):
                await status_store(driver).write_statuses(before)
        raise


MAX_REQUEUED_RECORDS = 1_000
"""Most status records one retry rewrites (the CLI retries in batches of fewer)."""


READS_AT_ONCE = 32
"""Status reads in flight at once: a page of records costs a few round trips, not one per
record, without taking every connection of a driver's pool."""


async def _read_statuses(store: StatusStore, task_ids: Sequence[str]) -> list[bytes | None]:
    found: list[bytes | None] = []
    for start in range(0, len(task_ids), READS_AT_ONCE):
        chunk = task_ids[start : start + READS_AT_ONCE]
        found += await asyncio.gather(*(store.read_status(t) for t in chunk))
    return found


async def cancel(
    task_id: str, *, driver: str | Driver | None = None, keep: float = DEFAULT_TRACK_TTL
) -> CancelOutcome:
    """Cancel a task: a queued or delayed one never runs; a running one is stopped.

    A running async task gets ``asyncio.CancelledError`` (its ``failed`` hook is not
    called), a process task has its child stopped, and a thread task sees
    ``current_task().cancel_requested`` turn true (Python cannot kill a thread). The state
    becomes ``cancelled``. Workers hear of it at once on Redis and PostgreSQL, and within a
    second elsewhere.

    Args:
        task_id: The id `dispatch()` returned.
        driver: The driver the task went to; default: the configured one.
        keep: Seconds a finished record is kept (tracked tasks).

    Returns:
        `CancelOutcome.ALREADY_FINISHED` (and nothing changed) when the tracked task had
        finished; `CancelOutcome.REQUESTED` otherwise.

    Raises:
        TypeError: the driver cannot carry cancellations.
        ValueError: `task_id` is not a task id (a UUID): a request for it could never
            stop anything.
    """
    task_id = canonical_task_id(task_id)
    the_driver = await get_driver(driver)
    log = event_log(the_driver)
    if isinstance(the_driver, StatusStore):
        raw = await the_driver.read_status(task_id)
        current = None if raw is None else TaskStatus.decode(raw)
        if current is not None:
            if current.finished:
                return CancelOutcome.ALREADY_FINISHED
            if current.state == TaskState.RUNNING:
                changed = current.replace(cancel_requested=True)
            else:  # not running: it is cancelled now, whichever worker takes it later
                now = datetime.fromtimestamp(time.time(), UTC)
                changed = current.replace(
                    state=TaskState.CANCELLED, cancel_requested=True, finished_at=now
                )
            await the_driver.write_statuses([write_for(changed, keep)])
    await log.append_log(CANCELS, [task_id.encode()], CANCEL_RETENTION)
    return CancelOutcome.REQUESTED


async def list_workers(*, driver: str | Driver | None = None) -> list[WorkerInfo]:
    """The live workers (those whose heartbeat has not expired), by start time.

    Raises:
        TypeError: the driver keeps no worker registry.
    """
    the_driver = await get_driver(driver)
    if not isinstance(the_driver, WorkerRegistry):
        raise TypeError(
            f"{type(the_driver).__name__} keeps no worker registry; {use_one_of(WorkerRegistry)}"
        )
    # Bounded work whatever the registry holds, a third-party driver's included.
    raw = (await the_driver.list_workers())[:MAX_WORKER_RECORDS]
    found = [w for w in map(WorkerInfo.decode, raw) if w]
    return sorted(found, key=lambda w: w.started_at)


__all__ = [
    "CancelOutcome",
    "cancel",
    "list_tasks",
    "list_workers",
    "retry_dead_letters",
    "status",
]
