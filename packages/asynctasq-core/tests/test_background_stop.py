"""A worker stops even when code under a background loop swallows a cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from asynctasq.background import cancel_and_wait
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker


class SwallowingLog(MemoryDriver):
    """Its log reads swallow a cancellation and return normally, as a client library does
    that turns a cancelled command into a connection error and runs the command again."""

    swallowed = 0

    async def read_log(
        self,
        log: str,
        cursor: str | None,
        *,
        wait: float,
        limit: int = 1000,
        max_entry: int | None = None,
    ) -> tuple[list[bytes], str]:
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            self.swallowed += 1
        return [], cursor or "0-0"


async def test_a_worker_stops_though_its_cancels_reader_swallowed_the_cancellation() -> None:
    driver = SwallowingLog()
    worker = Worker(driver, queues=["q"], install_signal_handlers=False, poll_wait=0.1)
    runner = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)  # the cancels loop is waiting in a read
    began = time.monotonic()
    worker.request_stop()
    await asyncio.wait_for(runner, 10)  # before: the loop read on and the stop never ended
    assert driver.swallowed >= 1
    assert time.monotonic() - began < 3


async def _deaf(seconds: float) -> None:
    """Ignores every cancellation for `seconds`."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(left)


async def _failing() -> None:
    raise RuntimeError("boom")


async def test_a_task_deaf_to_cancellation_is_named_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deaf = asyncio.create_task(_deaf(2.0), name="deaf-loop")
    failed = asyncio.create_task(_failing(), name="failed-loop")
    polite = asyncio.create_task(asyncio.sleep(10), name="polite-loop")
    await asyncio.sleep(0)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, "asynctasq"):
        await cancel_and_wait([deaf, failed, polite], timeout=0.2)
    assert 0.2 <= time.monotonic() - began < 3  # bounded: the timeout, then one more second
    assert polite.cancelled() and failed.done() and not deaf.done()
    [warning] = [r.getMessage() for r in caplog.records if "did not stop" in r.getMessage()]
    assert "deaf-loop" in warning and "polite-loop" not in warning
    await deaf
