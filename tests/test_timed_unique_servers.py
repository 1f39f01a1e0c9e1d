"""Unique and expiring tasks on real servers (Redis, PostgreSQL, SQLite; MySQL once its
driver holds claims): one queued task per key under concurrent dispatches, the key released
when the task ends and freed by its ttl, expired tasks dead-lettered or dropped, counted."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

import asynctasq.config as config_module
from asynctasq import task
from asynctasq.config import set_global_config
from asynctasq.core import expired_counts
from asynctasq.core.unique import holds_claims
from asynctasq.drivers.base import ClaimStore, Driver
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker

pytestmark = pytest.mark.slow

URLS = {
    "redis": os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "postgres": os.environ.get(
        "ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test"),
}
QUEUE = "tu-servers"
runs: dict[str, list[Any]] = {}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


@pytest.fixture(params=["redis", "postgres", "sqlite", "mysql"])
async def driver(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Driver]:
    name: str = request.param
    tag = uuid.uuid4().hex[:10]
    section: dict[str, Any]
    if name == "sqlite":
        section = {"path": str(tmp_path / "queue.db")}
    else:
        if not _reachable(URLS[name]):
            if os.environ.get("CI"):
                pytest.fail(f"{name} is not reachable at {URLS[name]}")
            pytest.skip(f"{name} is not reachable at {URLS[name]}")
        if name == "redis":
            section = {"url": URLS[name], "prefix": f"tu-{tag}"}
        elif name == "postgres":
            section = {"dsn": URLS[name], "schema": f"tu_{tag}", "auto_migrate": True}
        else:
            section = {
                "dsn": URLS[name],
                "queue_table": f"tu_{tag}_q",
                "dead_letter_table": f"tu_{tag}_d",
            }
    saved = config_module.configured()
    set_global_config(driver=name, **{name: section})
    runs.clear()
    try:
        found = await get_driver()
        if name == "postgres":
            await found.init_schema()  # type: ignore[attr-defined]
        if not holds_claims(found):
            pytest.skip(f"the {name} driver holds no claims yet")
        yield found
    finally:
        await (await get_driver()).close()
        config_module.use_config(saved)
        await _drop(name, section, tag)


async def _drop(name: str, section: dict[str, Any], tag: str) -> None:
    if name == "redis":
        from redis.asyncio import Redis

        r = Redis.from_url(section["url"])
        try:
            keys = [k async for k in r.scan_iter(match=f"*{section['prefix']}*", count=1000)]
            if keys:
                await r.delete(*keys)
        finally:
            await r.aclose()
    elif name == "postgres":
        import asyncpg

        conn = await asyncpg.connect(section["dsn"])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{section["schema"]}" CASCADE')
        finally:
            await conn.close()
    elif name == "mysql":
        import aiomysql

        from asynctasq_mysql import parse_dsn

        conn = await aiomysql.connect(**parse_dsn(section["dsn"]).connect_kwargs())
        try:
            async with conn.cursor() as cur:
                await cur.execute("SET SESSION sql_notes = 0")
                await cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name LIKE %s",
                    (f"tu\\_{tag}\\_%",),
                )
                for (table,) in await cur.fetchall():
                    await cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        finally:
            conn.close()


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
