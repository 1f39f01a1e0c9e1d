"""The dispatching side of the lifecycle: a tracked task's first record, ``task-enqueued``.

The first record is written *before* the message is queued: a worker that takes the task at
once then writes ``running`` after it, never before it. If queueing fails, the record is
rewritten as ``failed`` with the error, so it does not claim a task that is not there.

Queued inside the caller's transaction (``dispatch(connection=...)``), the first record is
written in that transaction by the driver, so it exists if and only if the task does, and no
``task-enqueued`` event is published: whether the task exists is decided by a commit that
comes later, and an event for a rolled-back task would report one that never was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from asynctasq.drivers.base import Driver, EventLog, OutgoingMessage, StatusWrite
from asynctasq.lifecycle import control, events
from asynctasq.lifecycle.events import EventType
from asynctasq.lifecycle.status import TaskState, TaskStatus, clip

log = logging.getLogger("asynctasq.dispatch")

Tracked = tuple[OutgoingMessage, str, float]
"""(message, task name, seconds to keep the record after the task ends)."""


def check_trackable(driver: Driver, name: str) -> None:
    """Raise before anything is queued when `driver` cannot track `name` (the error names
    the drivers that can)."""
    control.status_store(driver)


def _status(message: OutgoingMessage, name: str, state: TaskState) -> TaskStatus:
    return TaskStatus(
        task_id=message.task_id,
        state=state,
        task_name=name,
        queue=message.queue,
        enqueued_at=datetime.fromtimestamp(time.time(), UTC),
    )


def first_writes(tracked: Sequence[Tracked]) -> list[StatusWrite]:
    """The ``queued`` (or ``scheduled``) records of tasks about to be queued."""
    return [
        control.write_for(
            _status(m, name, TaskState.SCHEDULED if m.delay > 0 else TaskState.QUEUED), keep
        )
        for m, name, keep in tracked
    ]


async def write_first(driver: Driver, tracked: Sequence[Tracked]) -> None:
    """Write the `first_writes` of tasks about to be queued."""
    await control.status_store(driver).write_statuses(first_writes(tracked))


async def queueing_failed(driver: Driver, tracked: Sequence[Tracked], exc: BaseException) -> None:
    """Rewrite the first records as ``failed``: the tasks were never queued."""
    writes = [
        control.write_for(
            _status(m, name, TaskState.FAILED).replace(
                error_type=type(exc).__name__,
                error_message=clip(f"dispatch failed, the task was not queued: {exc}"),
            ),
            keep,
        )
        for m, name, keep in tracked
    ]
    try:
        await control.status_store(driver).write_statuses(writes)
    except Exception as error:
        log.warning("could not record the failed dispatch of %d task(s): %s", len(writes), error)


async def publish_enqueued(
    driver: Driver, queued: Sequence[tuple[OutgoingMessage, str]], retention: float
) -> None:
    """``task-enqueued`` events; a broken event channel is logged, never raised."""
    if not isinstance(driver, EventLog):
        return
    entries = [
        events.make(
            EventType.TASK_ENQUEUED,
            task_id=m.task_id,
            task_name=name,
            queue=m.queue,
            data={"delay": m.delay} if m.delay else {},
        ).encode()
        for m, name in queued
    ]
    try:
        await driver.append_log(events.LOG, entries, retention)
    except Exception as exc:
        log.warning("publishing task-enqueued events failed (%s); the tasks are queued", exc)
