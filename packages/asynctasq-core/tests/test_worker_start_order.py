"""When a fetch comes back short (the queues ran dry), the tasks it brought start before the
worker sets up its next fetch: an idle worker's dispatch-to-start time does not include
preparing the next wait. (After a full batch no slot is free: the next fetch waits for one.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import Delivery
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

QUEUE = "start-order"
events: list[str] = []


@task(queue=QUEUE)
async def note(i: int) -> None:
    events.append(f"task {i}")


class Recording(MemoryDriver):
    """Notes each fetch as it begins, before anything is taken."""

    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        events.append(f"fetch {limit}")
        return await super().dequeue(queues, limit=limit, wait=wait)


async def _run(driver: Recording, concurrency: int) -> None:
    worker = Worker(
        driver,
        queues=[QUEUE],
        concurrency=concurrency,
        burst=True,
        poll_wait=0.05,
        install_signal_handlers=False,
    )
    await asyncio.wait_for(worker.run(), 30)


async def test_a_task_from_a_short_batch_starts_before_the_next_fetch() -> None:
    events.clear()
    driver = Recording()
    await driver.connect()
    try:
        await driver.enqueue(prepare(note(0)))
        await _run(driver, concurrency=10)
    finally:
        await driver.close()
    assert events[:3] == ["fetch 10", "task 0", "fetch 9"], events
