"""Each tick's task has a deterministic id: a tick dispatched twice shows as one id twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from asynctasq import every, task
from asynctasq.core.dispatch import dispatch
from asynctasq.drivers.base import Delivery, OutgoingMessage
from asynctasq.lifecycle import events
from asynctasq.lifecycle.events import Event, EventType
from asynctasq.schedules import registry
from asynctasq.schedules.claims import tick_key, tick_task_id
from asynctasq.schedules.registry import Schedule, schedule
from asynctasq.schedules.scheduler import Scheduler
from asynctasq.testing import MemoryDriver

QUEUE = "sched-ids"
BASE = 1_800_000_000


@task(queue=QUEUE)
async def ping(label: str = "ping") -> None:
    pass


@pytest.fixture(autouse=True)
def _isolated_schedules() -> Iterator[None]:
    saved = dict(registry._schedules)
    registry._schedules.clear()
    yield
    registry._schedules.clear()
    registry._schedules.update(saved)


def every_ten(name: str = "ping") -> Schedule:
    return schedule(ping(name), every(seconds=10), name=name)


async def taken(driver: MemoryDriver) -> list[Delivery]:
    found = await driver.dequeue([QUEUE], limit=100, wait=0)
    await driver.ack(found)
    return found


def test_a_tick_id_is_a_uuid5_of_the_schedule_and_the_tick_fixed_forever() -> None:
    # Pinned: a new release must give the ticks of a running schedule the same ids.
    assert tick_task_id("beat", BASE) == "9d62d9c7-3c1f-53e4-8c4d-00941fa2132f"
    assert uuid.UUID(tick_task_id("beat", BASE)).version == 5
    ids = {tick_task_id(n, t) for n in ("beat", "beat:1", "other") for t in (BASE, BASE + 1)}
    assert len(ids) == 6


async def test_every_replica_gives_a_tick_the_same_task_id(memory: MemoryDriver) -> None:
    s = every_ten()
    replicas = [Scheduler(memory, [s], holder=f"w{n}", grace=60, events=True) for n in range(3)]
    for now in (BASE + 0.1, BASE + 10.1):
        for r in replicas:
            await r.run_once(now)
    ids = [d.task_id for d in await taken(memory)]
    assert ids == [tick_task_id("ping", BASE), tick_task_id("ping", BASE + 10)]
    entries, _ = await memory.read_log(events.LOG, None, wait=0)
    fired = [e for e in map(Event.decode, entries) if e and e.type == EventType.SCHEDULE_FIRED]
    assert [(e.data["tick"], e.task_id) for e in fired] == [
        (BASE, ids[0]),
        (BASE + 10, ids[1]),
    ]


async def test_a_retried_dispatch_of_a_tick_carries_the_same_id() -> None:
    # A dispatch that failed after the broker had the message (its reply lost) is retried:
    # both attempts carry the tick's id, so if both landed the duplicate shows as one id.
    class LostReply(MemoryDriver):
        sent: list[str]

        async def enqueue(self, message: OutgoingMessage) -> None:
            self.sent.append(message.task_id)
            if len(self.sent) == 1:
                raise ConnectionError("reply lost")
            await super().enqueue(message)

    driver = LostReply()
    driver.sent = []
    await driver.connect()
    try:
        sched = Scheduler(driver, [every_ten()], holder="w1", grace=60)
        wake = await sched.run_once(BASE + 0.1)
        assert await driver.read_claim(tick_key("ping", BASE)) is None  # given back: retried
        await sched.run_once(wake)
        assert driver.sent == [tick_task_id("ping", BASE)] * 2
        assert [d.task_id for d in await taken(driver)] == [tick_task_id("ping", BASE)]
    finally:
        await driver.close()


async def test_dispatch_takes_a_task_id_as_a_uuid_string(memory: MemoryDriver) -> None:
    given = uuid.uuid4()
    t = ping("given")
    t._driver_override = memory
    assert str(await dispatch(t, task_id=str(given).upper())) == str(given)
    assert [d.task_id for d in await taken(memory)] == [str(given)]
    for bad in ("not-a-uuid", "", 42):
        t = ping("bad")
        t._driver_override = memory
        with pytest.raises(ValueError, match="task_id must be a UUID string"):
            await dispatch(t, task_id=bad)  # type: ignore[arg-type]  # 42: checked at runtime
    assert await taken(memory) == []
