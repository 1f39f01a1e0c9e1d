"""Helpers for the CLI tests (on sys.path through conftest; not collected)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from asynctasq.core.dispatch import prepare
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import Driver

TASKS_DIR = Path(__file__).resolve().parent
"""The directory of the test task modules (an allowed root for the worker)."""

Invoke = Callable[..., Result]
"""The `cli` fixture: ``cli("worker", "--burst", env={...})`` -> typer's `Result`."""

REDIS_URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def enqueue(driver: Driver, tasks: Sequence[BaseTask[Any]]) -> list[str]:
    """Queue `tasks` on `driver` (outside any event loop); return their ids."""
    messages = [prepare(t) for t in tasks]

    async def send() -> None:
        await driver.connect()
        try:
            await driver.enqueue_many(messages)
        finally:
            await driver.close()

    asyncio.run(send())
    return [m.task_id for m in messages]


def lines(path: Path) -> list[str]:
    """The lines of a marker file (empty when the file does not exist)."""
    return path.read_text().splitlines() if path.exists() else []


def redis_available() -> bool:
    """Whether a Redis server answers at `REDIS_URL`."""
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


def require_redis() -> None:
    """Skip (or fail under CI) when Redis is not reachable."""
    try:
        import asynctasq_redis  # noqa: F401
    except ImportError:
        pytest.skip("asynctasq-redis is not installed")
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (CI is set)")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")


def make_dead_letters(
    driver: Driver, queue: str, count: int, marker_dir: str = "/tmp"
) -> list[str]:
    """Put `count` tasks on `queue` and dead-letter them all; return their ids."""
    import cli_test_tasks as t

    from asynctasq.drivers.base import Failure

    ids = enqueue(driver, [t.fail(marker_dir, f"boom {i}").on_queue(queue) for i in range(count)])

    async def kill() -> None:
        await driver.connect()
        try:
            await dead_letter_all()
        finally:
            await driver.close()

    async def dead_letter_all() -> None:
        left = count
        while left:
            deliveries = await driver.dequeue([queue], limit=min(left, 500), wait=0)
            for d in deliveries:
                await driver.dead_letter(
                    d, Failure("builtins.RuntimeError", f"boom {d.task_id}", "Traceback: boom")
                )
            left -= len(deliveries)

    asyncio.run(kill())
    return ids


def stats(driver: Driver, queue: str) -> tuple[int, int, int, int]:
    """(ready, delayed, in flight, dead) of `queue`."""

    async def get() -> tuple[int, int, int, int]:
        await driver.connect()
        try:
            [s] = await driver.stats([queue])
        finally:
            await driver.close()
        return s.ready, s.delayed, s.in_flight, s.dead

    return asyncio.run(get())


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


requires_sqlite = pytest.mark.skipif(
    not _installed("asynctasq_sqlite"), reason="asynctasq-sqlite is not installed"
)
requires_redis_driver = pytest.mark.skipif(
    not _installed("asynctasq_redis"), reason="asynctasq-redis is not installed"
)
