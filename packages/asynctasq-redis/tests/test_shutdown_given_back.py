"""The worker's "given back" count on a real Redis: what went back to ready, each task once.

A second stop (the second SIGTERM) while the worker still waits for work used to skew it:
the cancelled tasks' give-backs woke that wait, which took them again and gave them back a
second time (counted twice), and shutdown then cancelled tasks in the middle of giving back
(given back, not counted): "given back 2" or "4" with 3 tasks back in ready.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver

HERE = str(Path(__file__).resolve().parent)
QUEUE = "given-back"


@task(queue=QUEUE)
async def long_running(i: int) -> None:
    await asyncio.sleep(60)


async def enqueue(driver: RedisDriver, count: int) -> None:
    """Queue `count` long tasks on this test's driver (its own key prefix)."""
    await driver.enqueue_many([prepare(long_running(i)) for i in range(count)])


async def run_until_running(worker: Worker, count: int) -> asyncio.Task[None]:
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 15
    while worker.running < count:
        assert not runner.done(), runner.exception()
        assert time.monotonic() < deadline, f"{worker.running} of {count} tasks started"
        await asyncio.sleep(0.01)
    return runner


async def assert_all_back_in_ready(driver: RedisDriver, count: int) -> None:
    [stats] = await driver.stats([QUEUE])
    assert (stats.ready, stats.in_flight) == (count, 0)
    deliveries = await driver.dequeue([QUEUE], limit=count + 1, wait=0)
    assert len(deliveries) == count
    assert all(d.attempts == 0 for d in deliveries)  # giving back does not count a run
    await driver.ack(deliveries)


TASKS = 6


async def test_an_abort_while_the_worker_waits_for_work_counts_each_task_once(
    redis_driver: RedisDriver,
) -> None:
    await enqueue(redis_driver, TASKS)
    worker = Worker(
        redis_driver,
        queues=[QUEUE],
        concurrency=TASKS + 2,  # free slots: the worker is waiting for more work
        shutdown_timeout=10,
        poll_wait=5,
        install_signal_handlers=False,
        allowed_roots=[HERE],
    )
    runner = await run_until_running(worker, TASKS)

    worker.request_stop()  # the first SIGTERM: the wait for work goes on (up to poll_wait)
    await asyncio.sleep(0.05)
    worker.abort()  # the second: what it gives back must not be taken and counted again
    await asyncio.wait_for(runner, 30)

    assert worker.stats.released == TASKS
    await assert_all_back_in_ready(redis_driver, TASKS)


async def test_an_abort_during_the_give_back_does_not_lose_the_count(
    redis_driver: RedisDriver,
) -> None:
    await enqueue(redis_driver, TASKS)
    worker = Worker(
        redis_driver,
        queues=[QUEUE],
        concurrency=TASKS,
        shutdown_timeout=10,
        install_signal_handlers=False,
        allowed_roots=[HERE],
    )
    runner = await run_until_running(worker, TASKS)

    worker.request_stop()
    await asyncio.sleep(0.05)
    worker.abort()  # the tasks start giving their deliveries back...
    await asyncio.sleep(0)
    worker.abort()  # ...and a third signal cancels them again, mid-way
    await asyncio.wait_for(runner, 30)

    assert worker.stats.released == TASKS
    await assert_all_back_in_ready(redis_driver, TASKS)


async def test_past_the_shutdown_deadline_every_running_task_is_counted(
    redis_driver: RedisDriver,
) -> None:
    await enqueue(redis_driver, 3)
    worker = Worker(
        redis_driver,
        queues=[QUEUE],
        concurrency=3,
        shutdown_timeout=0.5,
        install_signal_handlers=False,
        allowed_roots=[HERE],
    )
    runner = await run_until_running(worker, 3)

    worker.request_stop()
    await asyncio.wait_for(runner, 30)

    assert worker.stats.released == 3
    await assert_all_back_in_ready(redis_driver, 3)
