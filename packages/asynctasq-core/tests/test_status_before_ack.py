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
