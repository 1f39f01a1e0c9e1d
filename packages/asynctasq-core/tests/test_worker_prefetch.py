"""`Worker(prefetch=N)`: messages taken ahead of free slots start as slots free up, every
task runs once, never more than `concurrency` at a time, and a stop gives the waiting ones
back without counting an attempt."""

from __future__ import annotations

import asyncio
import time

import pytest

from asynctasq import task
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker

QUEUE = "prefetch"
state = {"now": 0, "most": 0, "ran": 0}


@task(queue=QUEUE)
async def short(i: int) -> None:
    state["now"] += 1
    state["most"] = max(state["most"], state["now"])
    await asyncio.sleep(0.001)
    state["now"] -= 1
    state["ran"] += 1


@task(queue=QUEUE)
async def forever(i: int) -> None:
    await asyncio.sleep(60)


@pytest.fixture(autouse=True)
def _reset() -> None:
    state.update(now=0, most=0, ran=0)


async def test_prefetched_tasks_all_run_once_within_the_concurrency() -> None:
    for i in range(200):
        await short(i).dispatch()
    worker = Worker(
        await get_driver(),
        queues=[QUEUE],
        concurrency=3,
        prefetch=6,
        burst=True,
        install_signal_handlers=False,
    )
    await asyncio.wait_for(worker.run(), 30)
    assert state["ran"] == 200 and worker.stats.succeeded == 200
    assert state["most"] == 3  # the window is wider than the concurrency, runs are not


async def test_a_stop_gives_the_waiting_ones_back_uncounted() -> None:
    for i in range(8):
        await forever(i).dispatch()
    driver = await get_driver()
    worker = Worker(
        driver,
        queues=[QUEUE],
        concurrency=2,
        prefetch=4,
        shutdown_timeout=0.2,
        poll_wait=0.1,
        install_signal_handlers=False,
    )
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 15
    while worker.running < 2 or worker.prefetched < 4:
        assert time.monotonic() < deadline and not runner.done()
        await asyncio.sleep(0.01)
    [stats] = await driver.stats([QUEUE])
    assert (stats.ready, stats.in_flight) == (2, 6)  # 2 running, 4 taken ahead
    worker.request_stop()
    await asyncio.wait_for(runner, 30)
    back = await driver.dequeue([QUEUE], limit=10, wait=0)
    # The 4 that never started come back as they were; the 2 cut off by the deadline
    # are given back too (released, not failed).
    assert len(back) == 8
    assert all(d.attempts == 0 for d in back)


def test_prefetch_must_be_a_count() -> None:
    with pytest.raises(ValueError, match="prefetch must be a whole number >= 0"):
        Worker("memory", prefetch=-1)
