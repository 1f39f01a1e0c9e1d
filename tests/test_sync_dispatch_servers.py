"""Sync dispatch from a WSGI-style thread pool against real Redis and PostgreSQL: 16 threads
x 50 dispatches through the one background loop, every task arrives exactly once (drained
by a real worker)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

import asynctasq.config as config_module
from asynctasq import task
from asynctasq.config import reset_config, set_global_config
from asynctasq.core import sync
from asynctasq.worker import Worker

pytestmark = pytest.mark.slow

URLS = {
    "redis": os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "postgres": os.environ.get(
        "ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
    ),
}
THREADS, PER_THREAD = 16, 50
arrived: Counter[int] = Counter()


@task(queue="sync-servers")
async def arrive(n: int) -> None:
    arrived[n] += 1


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


def _settings(name: str, tag: str) -> dict[str, Any]:
    if name == "redis":
        return {"driver": "redis", "redis": {"url": URLS["redis"], "prefix": tag}}
    return {
        "driver": "postgres",
        "postgres": {
            "dsn": URLS["postgres"],
            "schema": tag,
            "auto_migrate": True,
            "min_pool_size": 1,
            "max_pool_size": 4,
        },
    }


async def _drop(name: str, tag: str) -> None:
    if name == "redis":
        from redis.asyncio import Redis

        client = Redis.from_url(URLS["redis"])
        try:
            keys = [k async for k in client.scan_iter(match=f"{tag}*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
    else:
        import asyncpg

        conn = await asyncpg.connect(URLS["postgres"])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture(params=["redis", "postgres"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    if not _reachable(URLS[name]):
        pytest.skip(f"{name} unreachable at {URLS[name]}")
    tag = f"atq_sync_{uuid.uuid4().hex[:10]}"
    saved = config_module.configured()
    reset_config()
    set_global_config(**_settings(name, tag))
    arrived.clear()
    try:
        yield name
    finally:
        sync.close()
        config_module.use_config(saved)
        asyncio.run(_drop(name, tag))


def test_a_thread_pool_dispatches_each_task_exactly_once(server: str) -> None:
    def request_handler(thread: int) -> list[str]:
        return [arrive(thread * 1000 + i).dispatch_sync(timeout=60) for i in range(PER_THREAD)]

    with ThreadPoolExecutor(THREADS) as pool:
        ids = [i for chunk in pool.map(request_handler, range(THREADS)) for i in chunk]
    assert len(set(ids)) == THREADS * PER_THREAD
    loop_thread = sync.dispatch_thread()
    assert loop_thread is not None and loop_thread.is_alive()

    # One more batch through the same loop: the driver (and its connections) is reused.
    more = sync.dispatch_many_sync([arrive(-1), arrive(-2)])
    assert len(more) == 2

    worker = Worker(
        queues=["sync-servers"], burst=True, concurrency=50, install_signal_handlers=False
    )
    asyncio.run(worker.run())
    expected = {t * 1000 + i for t in range(THREADS) for i in range(PER_THREAD)} | {-1, -2}
    assert set(arrived) == expected
    assert set(arrived.values()) == {1}, "a task ran more than once"
    assert worker.stats.succeeded == len(expected)
