"""Kept results on Redis, end to end: a worker runs the task, the dispatcher awaits it."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from asynctasq import task
from asynctasq.errors import TaskFailedError
from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver

HERE = str(Path(__file__).resolve().parent)
URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PREFIX = f"test-results-{uuid.uuid4().hex[:8]}"
driver = RedisDriver(url=URL, prefix=PREFIX)


@task(queue="results", keep_result=True, driver=driver)
async def square(n: int) -> int:
    return n * n


@task(queue="results", keep_result=60, max_attempts=1, driver=driver)
async def broken() -> None:
    raise RuntimeError("broken on purpose")


async def test_results_round_trip_through_a_worker(redis_url: str) -> None:
    assert redis_url == URL
    worker = Worker(driver, queues=["results"], install_signal_handlers=False, allowed_roots=[HERE])
    runner = asyncio.create_task(worker.run())
    ids: list[str] = []
    failed = ""
    try:
        # awaited before the worker runs it: the waiter blocks on Redis until it is kept
        ids += [await square(n).dispatch() for n in range(5)]
        assert await asyncio.gather(*(i.result(timeout=10) for i in ids)) == [0, 1, 4, 9, 16]
        failed = await broken().dispatch()
        with pytest.raises(TaskFailedError, match="broken on purpose"):
            await failed.result(timeout=10)
        [dead] = await driver.list_dead_letters(queue="results")
        assert dead.task_id == failed  # the failure is also dead-lettered, as always
        # a result lives as long as asked: an hour here
        ttl = await driver.client.pttl(f"{driver.prefix}:result:{ids[0]}")
        assert 3_500_000 < ttl <= 3_600_000
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
        await driver.purge_dead_letters(queue="results")
        await driver.client.delete(*[f"{PREFIX}:result:{i}" for i in [*ids, failed]])
        await driver.close()
