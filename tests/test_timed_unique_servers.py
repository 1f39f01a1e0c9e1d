"""Unique and expiring tasks on real servers (Redis, PostgreSQL, MySQL, SQLite): one queued
task per key under concurrent dispatches, the key released when the task ends and freed by
its ttl, expired tasks dead-lettered or dropped, counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.servers import installed, section

from asynctasq import task
from asynctasq.core import expired_counts
from asynctasq.core.unique import holds_claims
from asynctasq.drivers.base import ClaimStore, Driver
from asynctasq.worker import Worker

pytestmark = pytest.mark.slow

QUEUE = "tu-servers"
runs: dict[str, list[Any]] = {}


@pytest.fixture(params=["redis", "postgres", "sqlite", "mysql"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Driver]:
    async with installed(section(request.param, "tu", tmp_path)) as found:
        runs.clear()
        if not holds_claims(found):
            pytest.skip(f"the {request.param} driver holds no claims yet")
        yield found


async def work(driver: Driver, until: Callable[[], Any], timeout: float = 30.0) -> Worker:
    worker = Worker(driver, queues=[QUEUE], install_signal_handlers=False, poll_wait=0.1)
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    try:
        while not await until():
            if runner.done():
                runner.result()
            assert time.monotonic() < deadline, f"not reached in {timeout} s; runs={runs}"
            await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
    return worker


async def depth(driver: Driver) -> tuple[int, int, int, int]:
    (s,) = await driver.stats([QUEUE])
    return s.ready, s.delayed, s.in_flight, s.dead


@task(queue=QUEUE, unique=True)
async def unique_job(n: int) -> None:
    runs.setdefault("unique", []).append(n)


@task(queue=QUEUE, unique_key="n", max_attempts=1)
async def unique_failing(n: int) -> None:
    runs.setdefault("failing", []).append(n)
    raise ValueError("fails for good")


@task(queue=QUEUE, unique=True, unique_for=1.0)
async def short_lock(n: int) -> None: ...


@task(queue=QUEUE, expires=0.3)
async def perishable(n: int) -> None:
    runs.setdefault("perishable", []).append(n)


@task(queue=QUEUE, expires=0.3, on_expiry="drop")
async def droppable(n: int) -> None:
    runs.setdefault("droppable", []).append(n)


@task(queue=QUEUE, expires=1.0, max_attempts=3, retry_delay=1.5)
async def fails_then_expires(n: int) -> None:
    runs.setdefault("retried", []).append(n)
    raise ConnectionError("the first run fails")


async def test_concurrent_dispatches_of_one_key_queue_exactly_one(driver: Driver) -> None:
    ids = await asyncio.gather(*(unique_job(1).dispatch() for _ in range(40)))
    assert len(set(ids)) == 1
    assert await depth(driver) == (1, 0, 0, 0)
    claims: ClaimStore = driver  # type: ignore[assignment]
    key = await _key_of(driver)
    assert key is not None and key.startswith(f"unique:{unique_job.name}:#")
    assert await claims.read_claim(key) == ids[0]


async def _key_of(driver: Driver) -> str | None:
    from asynctasq.core import envelope

    deliveries = await driver.dequeue([QUEUE], limit=1, wait=0.5)
    if not deliveries:
        return None
    await driver.release(deliveries)
    return envelope.decode(bytes(deliveries[0].payload)).unique_key


async def test_the_key_is_released_after_success_and_after_dead_letter(driver: Driver) -> None:
    first = await unique_job(2).dispatch()

    async def done() -> bool:
        return runs.get("unique") == [2] and (await depth(driver))[:3] == (0, 0, 0)

    await work(driver, done)
    await asyncio.sleep(0.2)  # released in the background after the ack
    assert await unique_job(2).dispatch() != first
    failing = await unique_failing(3).dispatch()

    async def dead() -> bool:
        return (await depth(driver))[3] == 1

    await work(driver, dead)
    await asyncio.sleep(0.2)
    assert await unique_failing(3).dispatch() != failing


async def test_the_key_frees_itself_after_its_ttl(driver: Driver) -> None:
    first = await short_lock(4).dispatch()
    assert await short_lock(4).dispatch() == first
    await asyncio.sleep(1.3)
    assert await short_lock(4).dispatch() != first
    assert (await depth(driver))[0] == 2


async def test_expired_tasks_are_dead_lettered_or_dropped_and_counted(driver: Driver) -> None:
    dead_id = await perishable(1).dispatch()
    await droppable(2).dispatch()
    await asyncio.sleep(0.5)

    async def settled() -> bool:
        return await depth(driver) == (0, 0, 0, 1)

    worker = await work(driver, settled)
    assert "perishable" not in runs and "droppable" not in runs
    assert worker.stats.expired == 2
    (letter,) = await driver.list_dead_letters(queue=QUEUE)
    assert letter.task_id == dead_id
    assert letter.failure.exception_type == "asynctasq.errors.TaskExpiredError"
    claims: ClaimStore = driver  # type: ignore[assignment]
    assert await expired_counts.read_expired(claims, [QUEUE]) == [2]


async def test_a_task_that_expires_while_waiting_for_a_retry_is_expired_then(
    driver: Driver,
) -> None:
    await fails_then_expires(5).dispatch()

    async def dead() -> bool:
        return (await depth(driver))[3] == 1

    await work(driver, dead)
    assert runs["retried"] == [5]
    (letter,) = await driver.list_dead_letters(queue=QUEUE)
    assert letter.failure.exception_type.endswith("TaskExpiredError")
