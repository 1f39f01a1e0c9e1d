"""Kill-a-worker: SIGKILLed workers lose nothing; a task that kills its worker every time is
dead-lettered once its attempts are used up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from asynctasq_postgres import PostgresDriver

SCRIPT = Path(__file__).with_name("pg_crash_worker.py")
Factory = Callable[..., PostgresDriver]
pytestmark = pytest.mark.slow


class Processes:
    """Worker subprocesses started by one test, all ended at teardown."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema
        self.running: list[asyncio.subprocess.Process] = []

    async def start(self, role: str, number: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            role,
            self.dsn,
            self.schema,
            str(number),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=str(SCRIPT.parent),
        )
        self.running.append(process)
        return process

    async def run(self, role: str, number: int) -> None:
        process = await self.start(role, number)
        assert await asyncio.wait_for(process.wait(), 60) == 0

    async def kill(self, process: asyncio.subprocess.Process) -> None:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def close(self) -> None:
        for process in self.running:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def crash_setup(
    make_driver: Factory, dsn: str, admin: asyncpg.Connection[asyncpg.Record]
) -> AsyncIterator[tuple[PostgresDriver, Processes]]:
    driver = make_driver()
    await driver.init_schema()
    schema = driver.table_names.schema
    for table in ("started", "completed"):
        await admin.execute(f'CREATE TABLE "{schema}".{table} (n int NOT NULL, pid int NOT NULL)')
    processes = Processes(dsn, schema)
    yield driver, processes
    await processes.close()


async def count_completed(admin: asyncpg.Connection[asyncpg.Record], schema: str) -> int:
    done: int = await admin.fetchval(f'SELECT count(DISTINCT n) FROM "{schema}".completed')
    return done


async def started_by(admin: asyncpg.Connection[asyncpg.Record], schema: str, pid: int) -> int:
    started: int = await admin.fetchval(
        f'SELECT count(*) FROM "{schema}".started WHERE pid = $1', pid
    )
    return started


async def test_killed_workers_lose_no_task(
    crash_setup: tuple[PostgresDriver, Processes], admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    driver, processes = crash_setup
    schema, total = driver.table_names.schema, 1000
    await processes.run("dispatch", total)
    steady = await processes.start("work", 5)
    victim = await processes.start("work", 5)
    killed: list[int] = []
    while len(killed) < 4 and await count_completed(admin, schema) < total:
        # Kill it in the middle of its work: once it has started a few tasks.
        deadline = time.monotonic() + 20
        while await started_by(admin, schema, victim.pid) < 8:
            assert time.monotonic() < deadline, "the restarted worker never started a task"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        killed.append(victim.pid)
        await processes.kill(victim)
        victim = await processes.start("work", 5)

    deadline = time.monotonic() + 60
    while await count_completed(admin, schema) < total:
        assert time.monotonic() < deadline, "not every task completed in time"
        assert steady.returncode is None, "the untouched worker died"
        await asyncio.sleep(0.25)

    assert len(killed) == 4, "the run was too short to kill the worker several times"
    completed = await admin.fetch(
        f'SELECT n, count(*) AS runs FROM "{schema}".completed GROUP BY n'
    )
    assert {row["n"] for row in completed} == set(range(total))
    duplicated = {row["n"] for row in completed if row["runs"] > 1}
    in_killed = {
        row["n"]
        for row in await admin.fetch(
            f'SELECT DISTINCT n FROM "{schema}".started WHERE pid = ANY($1::int[])', killed
        )
    }
    print(f"kills={len(killed)} duplicates={len(duplicated)} in-killed-workers={len(in_killed)}")
    assert duplicated <= in_killed, "a task ran twice without its worker being killed"
    # Every lease was settled: nothing left in the queue, nothing dead-lettered.
    deadline = time.monotonic() + 10
    while (stats := (await driver.stats(["crash"]))[0]).ready + stats.in_flight:
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.2)
    assert stats.dead == 0


async def test_a_task_that_kills_its_worker_is_dead_lettered(
    crash_setup: tuple[PostgresDriver, Processes], admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    driver, processes = crash_setup
    await processes.run("dispatch-poison", 1)
    deaths = 0
    deadline = time.monotonic() + 90
    while not await driver.list_dead_letters(queue="crash"):
        assert time.monotonic() < deadline, "the poison task was never dead-lettered"
        worker = await processes.start("work", 1)
        # One worker at a time, until it dies or the task is dead-lettered (a worker that
        # is merely slow to start on a loaded machine is not taken for a survivor).
        while worker.returncode is None and not await driver.list_dead_letters(queue="crash"):
            assert time.monotonic() < deadline, "the poison task was never dead-lettered"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.wait(), 0.5)
        deaths += worker.returncode == -signal.SIGKILL
    [dead] = await driver.list_dead_letters(queue="crash")
    assert deaths == 2  # max_attempts=2: two runs, both killed their worker
    assert dead.attempts == 3
    assert "TaskLostError" in dead.failure.exception_type
    runs = await admin.fetchval(f'SELECT count(*) FROM "{driver.table_names.schema}".started')
    assert runs == 2
