"""Task code for the kill-a-worker test (imported by `crash_worker.py`, never by pytest).

`record(n)` sleeps a little, then writes ``(n, pid)`` into the results table named by
``CRASH_RESULTS``; duplicates are kept so the test can count them.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import aiomysql

from asynctasq import task
from asynctasq_mysql import parse_dsn

QUEUE = os.environ["CRASH_QUEUE"]
_pool: Any = None


async def _results_pool() -> Any:
    global _pool
    if _pool is None:
        _pool = await aiomysql.create_pool(
            minsize=1,
            maxsize=int(os.environ.get("CRASH_CONCURRENCY", "5")),
            autocommit=True,
            **parse_dsn(os.environ["CRASH_DSN"]).connect_kwargs(),
        )
    return _pool


@task(queue=QUEUE, visibility_timeout=2.0, max_attempts=100)
async def record(n: int) -> None:
    """Pretend to work for 20-120 ms, then record that `n` completed in this process."""
    await asyncio.sleep(random.uniform(0.02, 0.12))
    pool = await _results_pool()
    async with pool.acquire() as conn, conn.cursor() as cursor:
        await cursor.execute(
            f"INSERT INTO `{os.environ['CRASH_RESULTS']}` (`n`, `pid`) VALUES (%s, %s)",
            (n, os.getpid()),
        )
