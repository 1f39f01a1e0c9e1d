"""Tasks of the limits end-to-end tests: each run appends its start and end to a file of
its worker process under ``$LIMITS_RECORDS`` (one line: name, n, start, end, attempts)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from asynctasq import task

QUEUE = "limits-e2e"


def _record(name: str, n: int, start: float, end: float, attempts: int = 0) -> None:
    folder = Path(os.environ["LIMITS_RECORDS"])
    with open(folder / f"{os.getpid()}.log", "a") as out:
        out.write(f"{name} {n} {start:.6f} {end:.6f} {attempts}\n")


@task(queue=QUEUE, concurrency_limit=2, max_attempts=1)
async def capped(n: int) -> None:
    start = time.time()
    await asyncio.sleep(0.05)
    _record("capped", n, start, time.time())


@task(queue=QUEUE, rate_limit="20/s", max_attempts=1)
async def paced(n: int) -> None:
    now = time.time()
    _record("paced", n, now, now)


@task(queue=QUEUE, concurrency_limit=1, limit_lease=2.0, visibility_timeout=600)
async def held(n: int) -> None:
    start = time.time()
    _record("held-start", n, start, start)
    await asyncio.sleep(60 if n == 0 else 0)
    _record("held", n, start, time.time())
