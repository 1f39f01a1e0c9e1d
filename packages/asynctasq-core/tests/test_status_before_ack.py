"""A tracked task's final status record is written before its message is acknowledged, so a
worker killed in between leaves the task to run again, never acknowledged with a record
that still says it is running."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from asynctasq import task
from asynctasq.drivers.base import Delivery, StatusWrite
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

QUEUE = "status-before-ack"


class Recording(MemoryDriver):
    """The in-memory driver, noting the order of status writes and acks."""

    def __init__(self) -> None:
        super().__init__(namespace="status-before-ack")
        self.calls: list[tuple[str, str, str]] = []

    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        for w in writes:
            self.calls.append(("status", w.task_id, w.state))
        await super().write_statuses(writes)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.calls.extend(("ack", d.task_id, "") for d in deliveries)
        await super().ack(deliveries)


driver = Recording()


@task(queue=QUEUE, track=True, driver=driver)
async def tracked(i: int) -> int:
    await asyncio.sleep(0)
    return i


@task(queue=QUEUE, driver=driver)
async def untracked(i: int) -> int:
    return i


async def test_each_tracked_task_is_acked_after_its_final_record() -> None:
    ids = [str(await tracked(i).dispatch()) for i in range(20)]
    plain = [str(await untracked(i).dispatch()) for i in range(5)]
    await Worker(driver, queues=[QUEUE], burst=True, install_signal_handlers=False).run()
    calls = driver.calls
    for task_id in ids:
        acked = calls.index(("ack", task_id, ""))
        final = max(i for i, c in enumerate(calls) if c[:2] == ("status", task_id))
        assert calls[final][2] == "succeeded"
        assert final < acked, f"{task_id} acked before its record said it succeeded"
    assert all(("ack", i, "") in calls for i in plain)


class SlowFirstWrite(MemoryDriver):
    """Its first write of a final record hangs until cancelled (a broker slow to answer)."""

    def __init__(self) -> None:
        super().__init__(namespace="status-slow-write")
        self.final_writes = 0
        self.write_started = asyncio.Event()

    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        if any(w.state == "succeeded" for w in writes):
            self.final_writes += 1
            if self.final_writes == 1:
                self.write_started.set()
                await asyncio.sleep(60)
        await super().write_statuses(writes)


slow = SlowFirstWrite()


@task(queue="status-slow-write", track=True, driver=slow)
async def tracked_slow(i: int) -> int:
    return i


async def test_a_stop_during_a_status_write_still_writes_it_then_acks() -> None:
    """The worker stops while the write a finished task's ack waits for is under way: the
    record is written again by the last flush and the task acknowledged, not left to run
    again after its lease."""
    task_id = str(await tracked_slow(1).dispatch())
    worker = Worker(
        slow, queues=["status-slow-write"], install_signal_handlers=False, poll_wait=0.1
    )
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(slow.write_started.wait(), 10)
    worker.request_stop()
    await asyncio.wait_for(runner, 20)  # not the 60 s of the hanging write
    assert slow.final_writes == 2  # the cancelled one, then the last flush's
    [stats] = await slow.stats(["status-slow-write"])
    assert (stats.ready, stats.in_flight) == (0, 0)  # acknowledged
    record = await slow.read_status(task_id)
    assert record is not None and b"succeeded" in record
