"""Fixtures: worker processes on a private Redis prefix, free ports, scrapes."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TASKS_DIR = Path(__file__).parent / "task_modules"
if str(TASKS_DIR) not in sys.path:
    sys.path.insert(0, str(TASKS_DIR))

from prom_testing import QUEUE, REDIS_URL, require_redis  # noqa: E402  (needs TASKS_DIR)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh Redis key prefix (its queue and dead letters purged afterwards)."""
    require_redis()
    from asynctasq_redis import RedisDriver

    name = f"promtest-{uuid.uuid4().hex[:8]}"
    yield name

    async def clean() -> None:
        driver = RedisDriver(url=REDIS_URL, prefix=name)
        await driver.connect()
        try:
            await driver.purge(QUEUE)
            await driver.purge_dead_letters()
        finally:
            await driver.close()

    asyncio.run(clean())
