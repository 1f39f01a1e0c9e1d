"""The worker's "given back" count: each task it gave back, once, however the stop came."""

from __future__ import annotations

import asyncio
import time

from asynctasq import task
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker

QUEUE = "given-back"
TASKS = 6


@task(queue=QUEUE)
async def long_running(i: int) -> None:
    await asyncio.sleep(60)


async def stop_twice(concurrency: int, *, aborts: int) -> Worker:
    """Run `TASKS` long tasks, then stop the worker and abort it `aborts` times."""
    for i in range(TASKS):
        await long_running(i).dispatch()
    worker = Worker(
        await get_driver(),
        queues=[QUEUE],
        concurrency=concurrency,
        shutdown_timeout=10,
        poll_wait=5,
        install_signal_handlers=False,
    )
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 15
    while worker.running < TASKS:
        assert not runner.done(), runner.exception()
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    worker.request_stop()  # the first SIGTERM
    await asyncio.sleep(0.05)
    for _ in range(aborts):  # the second (and a third)
        worker.abort()
        await asyncio.sleep(0)
    await asyncio.wait_for(runner, 30)
    return worker


async def assert_all_ready_uncounted() -> None:
    driver = await get_driver()
    deliveries = await driver.dequeue([QUEUE], limit=TASKS + 1, wait=0)
    assert len(deliveries) == TASKS
    assert all(d.attempts == 0 for d in deliveries)


async def test_an_abort_while_the_worker_waits_for_work_counts_each_task_once() -> None:
    worker = await stop_twice(TASKS + 2, aborts=1)  # free slots: it is waiting for work
    assert worker.stats.released == TASKS
    await assert_all_ready_uncounted()


async def test_an_abort_during_the_give_back_does_not_lose_the_count() -> None:
    worker = await stop_twice(TASKS, aborts=2)
    assert worker.stats.released == TASKS
    await assert_all_ready_uncounted()
