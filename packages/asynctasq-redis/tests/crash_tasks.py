"""Tasks for the crash tests, imported by the test process and by `crash_worker.py`.

Each run records ``<pid>:<n>`` when it starts and when it finishes, in Redis lists named by
the ``key`` argument, so the test can tell which worker process ran what.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal

from redis.asyncio import Redis

from asynctasq import task
from asynctasq_redis import RedisDriver

URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PREFIX = os.environ.get("ASYNCTASQ_CRASH_PREFIX", "crash-test")

# Made at import time, as the guides do: nothing connects until the first dispatch.
driver = RedisDriver(url=URL, prefix=PREFIX)

_results: Redis | None = None


def results() -> Redis:
    global _results
    if _results is None:
        _results = Redis.from_url(URL)
    return _results


@task(driver=driver, max_attempts=50, visibility_timeout=2)
async def record(key: str, n: int) -> None:
    """Note the start, take a few milliseconds, note the finish."""
    me = f"{os.getpid()}:{n}"
    await results().rpush(f"{key}:started", me)
    await asyncio.sleep(random.uniform(0.005, 0.03))
    await results().rpush(f"{key}:done", me)


@task(driver=driver, max_attempts=2, visibility_timeout=1)
async def kill_my_worker(key: str) -> None:
    """SIGKILL the worker process running this task, every time."""
    await results().rpush(f"{key}:started", str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)
