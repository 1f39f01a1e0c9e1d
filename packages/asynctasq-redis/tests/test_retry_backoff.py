"""A task's own exponential retry policy on a real Redis: each retry is scheduled on the
server with a doubling delay (checked in the delayed set, against the server's clock), and
no run starts before its retry is due."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.core.task import Task
from asynctasq.drivers.base import Delivery
from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver

QUEUE = "backoff"
BASE = 0.2
ATTEMPTS = 4
EXPECTED = [BASE, 2 * BASE, 4 * BASE]  # after runs 1, 2 and 3; run 4 dead-letters it
SLACK_MS = 30.0
"""Redis keeps due times in whole milliseconds: rounding on either side."""

runs: list[float] = []


@task(
    queue=QUEUE,
    max_attempts=ATTEMPTS,
    retry_strategy="exponential",
    retry_delay=BASE,
    retry_max_delay=60,
    retry_jitter=False,
)
async def flaky_fetch() -> None:
    runs.append(time.monotonic())
    raise ConnectionError("upstream down")


class FlakyUpload(Task[None]):
    queue = QUEUE
    max_retries = ATTEMPTS
    retry_delay = 30  # alone: 30 s every time; the dispatch below makes it exponential

    async def handle(self) -> None:
        runs.append(time.monotonic())
        raise ConnectionError("upstream down")


class RecordingDriver(RedisDriver):
    """Records each retry's delay and where the server scheduled it."""

    scheduled: list[tuple[float, float]]
    """(delay asked for, due time minus the server's time before the call, in ms)."""

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        client = cast(Redis, self.client)
        seconds, micros = await client.time()
        before_ms = seconds * 1000 + micros / 1000
        await super().retry(delivery, delay=delay)
        key = self._keys[delivery.queue].delayed
        entries = await client.zrange(key, 0, -1, withscores=True)
        [(_, due_ms)] = cast(list[tuple[bytes, float]], entries)  # the test's one task
        self.scheduled.append((delay, due_ms - before_ms))


@pytest.fixture
async def driver(redis_url: str, prefix: str) -> AsyncIterator[RecordingDriver]:
    """A recording driver on the shared server with this test's prefix; its keys are
    deleted after."""
    made = RecordingDriver(url=redis_url, prefix=prefix)
    made.scheduled = []
    await made.connect()
    yield made
    client = cast(Redis, made.client)
    keys = [key async for key in client.scan_iter(match=f"{{{prefix}*")]
    if keys:
        await client.delete(*keys)
    await made.close()


@pytest.fixture(autouse=True)
def _clear() -> None:
    runs.clear()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: flaky_fetch(), id="decorator"),
        pytest.param(
            lambda: FlakyUpload().retry(
                strategy="exponential", delay=BASE, max_delay=60, jitter=False
            ),
            id="class-with-chain",
        ),
    ],
)
async def test_own_exponential_policy_retries_with_doubling_delays(
    driver: RecordingDriver, make: Any
) -> None:
    message = prepare(make())
    await driver.enqueue(message)
    worker = Worker(driver, queues=[QUEUE], install_signal_handlers=False, poll_wait=0.05)
    runner = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 60
        while worker.stats.dead_lettered < 1:
            assert not runner.done(), runner
            assert time.monotonic() < deadline, f"not dead-lettered; runs={runs}"
            await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)

    assert [delay for delay, _ in driver.scheduled] == pytest.approx(EXPECTED)
    for delay, scheduled_ms in driver.scheduled:
        # due at the server's clock plus the delay: never sooner, and not much later
        # (the round trip between reading the clock and the retry, generously bounded)
        assert delay * 1000 - SLACK_MS <= scheduled_ms <= delay * 1000 + 5000
    assert len(runs) == ATTEMPTS
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    for gap, delay in zip(gaps, EXPECTED, strict=True):
        assert gap >= delay - SLACK_MS / 1000, (gaps, EXPECTED)  # no run before it is due
    [letter] = await driver.list_dead_letters(task_ids=[message.task_id])
    assert letter.attempts == ATTEMPTS
    assert letter.failure.exception_type == "builtins.ConnectionError"
