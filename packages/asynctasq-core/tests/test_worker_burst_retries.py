"""A burst worker waits for the retries it scheduled itself when they are due soon (within
`BURST_RETRY_WAIT`), also on a broker that rounds a delay up (SQS: whole seconds): a queue
holding a retry due in a moment is not empty. Later ones stay queued for the next worker."""

from __future__ import annotations

import asyncio

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import Delivery
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

QUEUE = "burst-retries"
runs: list[str] = []


@task(queue=QUEUE, max_attempts=3, retry_delay=0.05, retry_strategy="fixed")
async def flaky() -> None:
    runs.append("flaky")
    raise RuntimeError("not yet")


@task(queue=QUEUE, max_attempts=2, retry_delay=3600)
async def later() -> None:
    runs.append("later")
    raise RuntimeError("in an hour")


class WholeSeconds(MemoryDriver):
    """Rounds every retry delay up to a whole second, as SQS does."""

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        await super().retry(delivery, delay=max(delay, 1.0))


async def _burst(driver: MemoryDriver) -> Worker:
    worker = Worker(
        driver, queues=[QUEUE], burst=True, poll_wait=0.05, install_signal_handlers=False
    )
    await asyncio.wait_for(worker.run(), 30)
    return worker


async def test_a_burst_run_waits_for_its_own_short_retries() -> None:
    runs.clear()
    driver = WholeSeconds()
    await driver.connect()
    try:
        await driver.enqueue(prepare(flaky()))
        worker = await _burst(driver)
        dead = await driver.list_dead_letters(queue=QUEUE)
    finally:
        await driver.close()
    assert runs == ["flaky"] * 3
    assert worker.stats.retried == 2 and len(dead) == 1


async def test_a_retry_due_later_stays_queued() -> None:
    runs.clear()
    driver = MemoryDriver()
    await driver.connect()
    try:
        await driver.enqueue(prepare(later()))
        await _burst(driver)
        [stats] = await driver.stats([QUEUE])
    finally:
        await driver.close()
    assert runs == ["later"]
    assert stats.delayed == 1


@task(queue=QUEUE, concurrency_limit=1)
async def limited() -> None:
    runs.append("limited")


async def test_a_limit_held_elsewhere_does_not_keep_a_burst_run_going() -> None:
    """Another worker's long task may hold the slot for as long as it runs: the burst run
    leaves the waiting task queued and exits, as it did before it waited for retries."""
    from asynctasq.core.limits import LIMIT_PREFIX

    runs.clear()
    driver = MemoryDriver()
    await driver.connect()
    try:
        message = prepare(limited())
        await driver.claim(f"{LIMIT_PREFIX}{limited.name}:c0", "elsewhere/0", 600)
        await driver.enqueue(message)
        started = asyncio.get_running_loop().time()
        await _burst(driver)
        took = asyncio.get_running_loop().time() - started
    finally:
        await driver.close()
    assert runs == []
    assert took < 8, took
