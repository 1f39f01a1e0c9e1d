"""``dispatch(connection=...)`` in core: a tracked task's first status record goes to the
driver with its message (to write in the caller's transaction), no task-enqueued event is
published for it, and a driver written before that keyword still works."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from asynctasq import dispatch_many, task
from asynctasq.config import set_global_config
from asynctasq.drivers.base import OutgoingMessage, StatusWrite
from asynctasq.lifecycle import events
from asynctasq.testing import MemoryDriver


class InTransaction(MemoryDriver):
    """Takes the caller's connection: a list standing for its transaction."""

    outside: list[StatusWrite]

    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        self.outside = [*getattr(self, "outside", []), *writes]
        await super().write_statuses(writes)

    async def enqueue_with_connection(
        self,
        connection: list[Any],
        messages: Sequence[OutgoingMessage],
        *,
        statuses: Sequence[StatusWrite] = (),
    ) -> None:
        connection.extend([*statuses, *messages])


class Older(InTransaction):
    """A driver written before ``statuses``: no such keyword."""

    async def enqueue_with_connection(  # type: ignore[override]
        self, connection: list[Any], messages: Sequence[OutgoingMessage]
    ) -> None:
        connection.extend(messages)


current = InTransaction(namespace="tx-current")
older = Older(namespace="tx-older")


@task(queue="tx", track=True, driver=current)
async def tracked(n: int) -> None:
    """Tracked, on the current driver."""


@task(queue="tx", track=True, driver=older)
async def tracked_on_older(n: int) -> None:
    """Tracked, on the older driver."""


@pytest.fixture(autouse=True)
def _fresh() -> None:
    set_global_config(events={"enabled": True})
    for driver in (current, older):
        driver.clear()
        driver.outside = []


@pytest.mark.parametrize("many", [False, True])
async def test_the_first_record_goes_with_the_message_into_the_transaction(many: bool) -> None:
    transaction: list[Any] = []
    if many:
        [task_id] = await dispatch_many([tracked(1)], connection=transaction)
    else:
        task_id = await tracked(1).dispatch(connection=transaction)
    record, message = transaction
    assert isinstance(record, StatusWrite) and isinstance(message, OutgoingMessage)
    assert (record.task_id, record.state, message.task_id) == (task_id, "queued", task_id)
    assert current.outside == []  # nothing written outside the caller's transaction
    logged, _ = await current.read_log(events.LOG, None, wait=0)
    assert logged == []  # whether it exists is settled by the caller's commit


async def test_outside_a_transaction_the_record_and_the_event_are_written() -> None:
    task_id = await tracked(2).dispatch()
    assert [w.task_id for w in current.outside] == [task_id]
    logged, _ = await current.read_log(events.LOG, None, wait=0)
    assert [e.task_id for e in map(events.Event.decode, logged) if e] == [task_id]


async def test_a_driver_without_the_statuses_keyword_still_queues_tracked_tasks() -> None:
    transaction: list[Any] = []
    task_id = await tracked_on_older(3).dispatch(connection=transaction)
    assert [m.task_id for m in transaction] == [task_id]
    assert [w.task_id for w in older.outside] == [task_id]  # written first, as it was
