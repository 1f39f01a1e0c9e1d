"""Dispatcher and worker processes for the kill-a-worker crash tests.

    python pg_crash_worker.py dispatch DSN SCHEMA COUNT
    python pg_crash_worker.py work DSN SCHEMA CONCURRENCY
    python pg_crash_worker.py dispatch-poison DSN SCHEMA 1

``record(n)`` inserts ``(n, pid)`` into ``SCHEMA.started`` when it starts and into
``SCHEMA.completed`` when it finishes (each insert committed on its own), so the test can
tell which tasks ran in a worker it killed. ``poison()`` SIGKILLs the worker running it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys

import asyncpg

from asynctasq import dispatch_many, init, task
from asynctasq.worker import Worker
from asynctasq_postgres import PostgresDriver

QUEUE = "crash"
_pool: asyncpg.Pool[asyncpg.Record] | None = None


async def _record(table: str, n: int) -> None:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(os.environ["CRASH_DSN"], min_size=1, max_size=4)
    schema = os.environ["CRASH_SCHEMA"]
    await _pool.execute(f'INSERT INTO "{schema}".{table} (n, pid) VALUES ($1, $2)', n, os.getpid())


@task(queue=QUEUE, visibility_timeout=2.0, max_attempts=20, retry_delay=0.1)
async def record(n: int) -> None:
    """Record the start, pretend to work, record the completion."""
    await _record("started", n)
    await asyncio.sleep(random.uniform(0.05, 0.15))
    await _record("completed", n)


@task(queue=QUEUE, visibility_timeout=1.0, max_attempts=2)
async def poison() -> None:
    """Kill the worker running it, every time."""
    await _record("started", -1)
    os.kill(os.getpid(), signal.SIGKILL)


def _settings(dsn: str, schema: str) -> dict[str, object]:
    return {"dsn": dsn, "schema": schema, "min_pool_size": 1, "max_pool_size": 4}


async def dispatch(dsn: str, schema: str, count: int) -> None:
    init({"driver": "postgres", "postgres": _settings(dsn, schema)})
    for start in range(0, count, 250):
        await dispatch_many(record(n) for n in range(start, min(start + 250, count)))


async def dispatch_poison(dsn: str, schema: str) -> None:
    init({"driver": "postgres", "postgres": _settings(dsn, schema)})
    await poison().dispatch()


async def work(dsn: str, schema: str, concurrency: int) -> None:
    driver = PostgresDriver(dsn, schema=schema, min_pool_size=1, max_pool_size=4, poll_interval=1.0)
    worker = Worker(driver=driver, queues=[QUEUE], concurrency=concurrency, poll_wait=1.0)
    await worker.run()


def main(argv: list[str]) -> None:
    role, dsn, schema, number = argv
    os.environ["CRASH_DSN"], os.environ["CRASH_SCHEMA"] = dsn, schema
    if role == "dispatch":
        asyncio.run(dispatch(dsn, schema, int(number)))
    elif role == "dispatch-poison":
        asyncio.run(dispatch_poison(dsn, schema))
    elif role == "work":
        asyncio.run(work(dsn, schema, int(number)))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
