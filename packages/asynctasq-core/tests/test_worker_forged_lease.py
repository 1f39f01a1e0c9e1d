"""A delivery whose lease no dispatch could have asked for (the driver read a row written
behind its back) is dead-lettered as malformed, never run: NaN, an infinite or past-ten-years
visibility timeout, or one of 0 or less."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence

import pytest

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import Delivery
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

QUEUE = "forged-lease"
ran: list[str] = []


@task(queue=QUEUE)
async def note(name: str) -> None:
    ran.append(name)


class Forging(MemoryDriver):
    """Hands out the deliveries of `forged` task ids with that visibility timeout."""

    def __init__(self, forged: dict[str, object]) -> None:
        super().__init__()
        self.forged = forged

    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        got = await super().dequeue(queues, limit=limit, wait=wait)
        return [
            dataclasses.replace(d, visibility_timeout=self.forged[d.task_id])
            if d.task_id in self.forged
            else d
            for d in got
        ]


@pytest.mark.parametrize("visibility", [math.nan, math.inf, 1e300, 4e8, 0.0, -1.0, "60", None])
async def test_a_delivery_with_a_forged_lease_is_dead_lettered_not_run(visibility: object) -> None:
    ran.clear()
    forged = prepare(note("forged"))
    driver = Forging({forged.task_id: visibility})
    await driver.connect()
    try:
        await driver.enqueue_many([prepare(note("before")), forged, prepare(note("after"))])
        worker = Worker(
            driver, queues=[QUEUE], burst=True, poll_wait=0.05, install_signal_handlers=False
        )
        await asyncio.wait_for(worker.run(), 30)
        [dead] = await driver.list_dead_letters(queue=QUEUE)
    finally:
        await driver.close()
    assert sorted(ran) == ["after", "before"]
    assert dead.task_id == forged.task_id
    assert dead.failure.exception_type == "asynctasq.errors.MalformedMessageError"
    assert "visibility timeout" in dead.failure.message
