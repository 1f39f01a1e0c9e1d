"""Tasks for the metrics tests: one that succeeds, one that always fails, one that waits."""

from __future__ import annotations

import asyncio

from asynctasq.core.function import task


@task(queue="prom")
async def ok(n: int) -> int:
    # Long enough that a drain of a few dozen spans several of the metrics' flushes (0.25 s),
    # so a scrape can see it part way.
    await asyncio.sleep(0.1)
    return n


@task(queue="prom", max_attempts=2, retry_delay=0)
async def broken(n: int) -> None:
    raise ValueError(f"broken {n}")


@task(queue="prom")
async def slow(seconds: float) -> None:
    await asyncio.sleep(seconds)
