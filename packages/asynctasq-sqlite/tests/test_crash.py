"""Kill workers mid-run: every task still completes; repeats only where a worker died."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from asynctasq_sqlite import SqliteDriver

HERE = Path(__file__).parent
SCRIPT = HERE / "crash_worker.py"
TASKS = 1000
KILLS = 4


async def start(role: str, db: Path, number: int, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        role,
        str(db),
        str(number),
        cwd=HERE,  # the worker imports the task module from here
        env={**os.environ, "CRASH_LOG": str(log)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def events(log: Path, kind: str) -> list[tuple[int, int]]:
    """(task number, pid) of every `kind` ("start" or "done") line in the log."""
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    rows = [line.split() for line in text.splitlines()]
    return [(int(n), int(pid)) for event, n, pid in rows if event == kind]


async def wait_until_busy(log: Path, pid: int, tasks: int, within: float = 30.0) -> None:
    """Wait until worker `pid` has finished `tasks` tasks (so it is mid-run)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if sum(1 for _, p in events(log, "done") if p == pid) >= tasks:
            return
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_killed_workers_lose_no_task(tmp_path: Path) -> None:
    db, log = tmp_path / "crash.db", tmp_path / "events.log"
    dispatcher = await start("dispatch", db, TASKS, log)
    assert await asyncio.wait_for(dispatcher.wait(), 60) == 0

    workers = [await start("work", db, 10, log) for _ in range(2)]
    killed: set[int] = set()
    try:
        for kill in range(KILLS):
            slot = kill % 2
            victim = workers[slot]
            await wait_until_busy(log, victim.pid, 30)
            victim.send_signal(signal.SIGKILL)  # tasks in flight, acks not yet sent
            await victim.wait()
            killed.add(victim.pid)
            workers[slot] = await start("work", db, 10, log)
        deadline = time.monotonic() + 90
        while len({n for n, _ in events(log, "done")}) < TASKS and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    started, done = events(log, "start"), events(log, "done")
    assert {n for n, _ in done} == set(range(TASKS)), "some tasks never completed"
    runs: dict[int, list[int]] = defaultdict(list)
    for n, pid in done:
        runs[n].append(pid)
    for n, pids in runs.items():
        # A task may complete again only after completing in a worker that was then killed
        # before its ack went out; outside killed workers it completes exactly once.
        assert sum(1 for pid in pids if pid not in killed) <= 1, f"task {n} doubled: {pids}"
    finished_by = {(n, pid) for n, pid in done}
    interrupted = {(n, pid) for n, pid in started if pid in killed} - finished_by
    assert len(killed) == KILLS
    assert interrupted, "the kills interrupted no running task: the test proved nothing"
    for n, pid in interrupted:
        assert any(p != pid for p in runs[n]), f"task {n} was not run again after a kill"
    repeated = sum(1 for pids in runs.values() if len(pids) > 1)
    print(f"{len(interrupted)} task runs interrupted by {KILLS} kills, {repeated} ran twice")

    driver = SqliteDriver(path=str(db))
    [stats] = await driver.stats(["crash"])
    await driver.close()
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)
