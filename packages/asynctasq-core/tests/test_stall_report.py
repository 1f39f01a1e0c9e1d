"""A worker that does not stop by its deadline says what it waits on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from pathlib import Path

import pytest

from asynctasq import task
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker
from asynctasq.worker import worker as worker_module
from asynctasq.worker.stall import StallReport

started: list[str] = []


async def _parked(event: asyncio.Event) -> None:
    await event.wait()


async def test_the_report_names_each_pending_task_and_where_it_waits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    event = asyncio.Event()
    parked = asyncio.create_task(_parked(event), name="parked-one")
    dump = tmp_path / "stacks.txt"
    with dump.open("w") as stream, caplog.at_level(logging.ERROR, "asynctasq.worker"):
        report = StallReport(0.1, stream=stream)
        report.arm(asyncio.get_running_loop())
        await asyncio.sleep(1.5)  # the log at 0.1 s, the threads' stacks at 1.1 s
        report.disarm()
    event.set()
    await parked
    [record] = [r for r in caplog.records if "still stopping" in r.getMessage()]
    text = record.getMessage()
    assert f"parked-one: _parked > Event.wait at {__file__}:" in text
    stacks = dump.read_text()
    assert "Thread 0x" in stacks or "Current thread 0x" in stacks
    assert "asyncio" in stacks  # the main thread, inside its event loop


async def test_a_report_disarmed_in_time_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dump = tmp_path / "stacks.txt"
    with dump.open("w") as stream, caplog.at_level(logging.ERROR, "asynctasq.worker"):
        report = StallReport(0.2, stream=stream)
        report.arm(asyncio.get_running_loop())
        report.arm(asyncio.get_running_loop())  # a second arm keeps the first
        await asyncio.sleep(0.05)
        report.disarm()
        await asyncio.sleep(1.5)
    assert not [r for r in caplog.records if "still stopping" in r.getMessage()]
    assert dump.read_text() == ""


@task(queue="stall")
async def stubborn(key: str) -> None:
    """Ignores cancellation for about a second: a stop cannot end it before then."""
    started.append(key)
    end = time.monotonic() + 1.2
    while (left := end - time.monotonic()) > 0:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(left)


async def test_sigterm_past_the_deadline_reports_the_stuck_task(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(worker_module, "STALL_GRACE", 0.2)
    await stubborn("s").dispatch()
    worker = Worker(await get_driver(), queues=["stall"], shutdown_timeout=0.2, poll_wait=0.1)
    with caplog.at_level(logging.INFO, "asynctasq.worker"):
        runner = asyncio.create_task(worker.run())
        while not started:
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's handler is installed: it runs
        await asyncio.wait_for(runner, 15)
    [report] = [r.getMessage() for r in caplog.records if "still stopping" in r.getMessage()]
    assert "still stopping 0.4 s" in report  # the deadline, then the grace
    # the chain down to the task's own code, and the line of it that waits
    assert re.search(rf"Worker._process > .* > stubborn > sleep at {re.escape(__file__)}:", report)


@task(queue="stall")
async def refuses_to_stop(key: str) -> None:
    """Catches every cancellation for 1.5 s."""
    started.append(key)
    end = time.monotonic() + 1.5
    while (left := end - time.monotonic()) > 0:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(left)


async def test_a_task_that_will_not_stop_is_reported_as_not_given_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(worker_module, "CANCEL_WAIT", 0.2)
    await refuses_to_stop("r").dispatch()
    driver = await get_driver()
    worker = Worker(
        driver, queues=["stall"], shutdown_timeout=0.1, poll_wait=0.1, install_signal_handlers=False
    )
    with caplog.at_level(logging.INFO, "asynctasq.worker"):
        runner = asyncio.create_task(worker.run())
        while "r" not in started:
            await asyncio.sleep(0.01)
        worker.request_stop()
        await asyncio.wait_for(runner, 15)
    messages = [r.getMessage() for r in caplog.records]
    assert any("did not stop when cancelled" in m and "not given back" in m for m in messages)
    assert worker.stats.released == 0
    assert await driver.dequeue(["stall"], limit=1, wait=0) == []  # still leased: not run twice
