"""The cost of a limited task: a Redis drain of the same no-op task, unlimited, with a
concurrency limit that never fills, and with a rate limit that never binds.

Run: ``.venv/bin/python -m scripts.bench.bench_limits [--repeats N] [--tasks N]`` from the
repository root; Redis from ``ASYNCTASQ_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/13``), keys under a fresh ``asynctasq-bench-limits-<id>`` prefix,
deleted after.

One worker in this process (concurrency 10, uvloop) drains the pre-queued tasks; the time
runs from its start to its last success. The claim calls are
counted, so the table shows the round trips a limited run adds (the broker's own speed
decides what they cost). Variants rotate between repeats; medians are shown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import uvloop
from redis.asyncio import Redis

from asynctasq import dispatch_many, task
from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver

URL = os.environ.get("ASYNCTASQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PREFIX = f"asynctasq-bench-limits-{uuid.uuid4().hex[:8]}"
QUEUE = "bench-limits"

driver = RedisDriver(url=URL, prefix=PREFIX)
calls: Counter[str] = Counter()


@task(driver=driver, queue=QUEUE, visibility_timeout=60)
async def plain() -> None:
    """Does nothing."""


@task(driver=driver, queue=QUEUE, visibility_timeout=60, concurrency_limit=1000)
async def slotted() -> None:
    """Does nothing, holding one of 1,000 slots (never all taken by 10 runs)."""


@task(driver=driver, queue=QUEUE, visibility_timeout=60, rate_limit="1000000/s")
async def paced() -> None:
    """Does nothing, after reserving a start (a rate far above what one worker reaches)."""


VARIANTS: dict[str, Any] = {"unlimited": plain, "concurrency_limit": slotted, "rate_limit": paced}


def count_claims() -> None:
    """Count the claim calls the worker makes (the round trips limits add)."""
    for name in ("claim", "release_claim", "read_claim"):
        original = getattr(driver, name)

        async def counted(*args: Any, _name: str = name, _call: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            return await _call(*args, **kw)

        setattr(driver, name, counted)


async def drain(variant: str, n: int) -> tuple[float, float]:
    """Tasks per second, and claim calls per task, for one drain of `n` tasks."""
    await driver.purge(QUEUE)
    make = VARIANTS[variant]
    for start in range(0, n, 1000):
        await dispatch_many([make() for _ in range(min(1000, n - start))])
    calls.clear()
    worker = Worker(driver, queues=[QUEUE], concurrency=10, install_signal_handlers=False)
    started = time.perf_counter()
    runner = asyncio.create_task(worker.run())
    # Polled, not signalled: a 10 ms look costs nothing next to thousands of tasks.
    while worker.stats.succeeded < n:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    worker.request_stop()
    await runner
    return n / elapsed, sum(calls.values()) / n


async def bench(repeats: int, n: int) -> None:
    await driver.connect()
    count_claims()
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    try:
        names = list(VARIANTS)
        for r in range(repeats):
            for variant in names[r % len(names) :] + names[: r % len(names)]:
                results[variant].append(await drain(variant, n))
    finally:
        await driver.close()
        r = Redis.from_url(URL)
        keys = [k async for k in r.scan_iter(match=f"*{PREFIX}*", count=1000)]
        if keys:
            await r.delete(*keys)
        await r.aclose()
    base = statistics.median(rate for rate, _ in results["unlimited"])
    print(
        f"| drain of {n:,} no-op tasks, Redis | tasks/s (median of {repeats}) | vs unlimited "
        "| claim calls per task |"
    )
    print("|---|---|---|---|")
    for variant, values in results.items():
        rate = statistics.median(v for v, _ in values)
        per_task = statistics.median(c for _, c in values)
        print(f"| {variant} | {rate:,.0f} | {rate / base:.0%} | {per_task:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args()
    uvloop.run(bench(args.repeats, args.tasks))


if __name__ == "__main__":
    main()
