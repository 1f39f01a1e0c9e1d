"""Crash tests: real worker processes, SIGKILLed mid-run, lose no task.

Workers are subprocesses running `crash_worker.py` (core's `Worker` on a `RedisDriver`);
tasks come from `crash_tasks.py` and record every start and finish in Redis.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from redis.asyncio import Redis

from asynctasq import dispatch_many

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow


@pytest.fixture
def tasks(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The `crash_tasks` module, importable by name as the worker processes import it."""
    monkeypatch.setenv("ASYNCTASQ_TEST_REDIS_URL", redis_url)
    monkeypatch.syspath_prepend(str(HERE))
    module = importlib.import_module("crash_tasks")
    assert redis_url == module.URL
    return module


class Workers:
    """Worker subprocesses for one queue; logs go to files for the failure report."""

    def __init__(self, queue: str, logs: Path) -> None:
        self.queue = queue
        self.logs = logs
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()

    def start(self, concurrency: int = 5) -> int:
        log = open(self.logs / f"worker-{len(self.procs) + len(self.killed)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "crash_worker.py"), self.queue, str(concurrency)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=HERE,
        )
        log.close()
        self.procs[proc.pid] = proc
        return proc.pid

    def kill(self, pid: int) -> None:
        proc = self.procs.pop(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.killed.add(pid)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()

    def report(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs.iterdir())


async def _wait_until(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkilled_workers_lose_nothing(tasks: ModuleType, tmp_path: Path) -> None:
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    key = f"{{{tasks.PREFIX}:{queue}}}:results"
    total = 1000
    results = Redis.from_url(tasks.URL)
    workers = Workers(queue, tmp_path)
    try:
        await dispatch_many([tasks.record(key, n).on_queue(queue) for n in range(total)])
        victim = workers.start()
        workers.start()

        async def finished() -> set[int]:
            done = await results.lrange(f"{key}:done", 0, -1)
            return {int(entry.split(b":")[1]) for entry in done}

        # Kill the same worker slot four times while work is in progress, restarting it.
        for mark in (100, 300, 500, 700):
            await _wait_until(lambda m=mark: _at_least(finished, m), 60, f"{mark} tasks done")
            workers.kill(victim)
            victim = workers.start()
        await _wait_until(lambda: _at_least(finished, total), 90, "every task done")

        starts = [e.decode().split(":") for e in await results.lrange(f"{key}:started", 0, -1)]
        by_survivors = Counter(int(n) for pid, n in starts if int(pid) not in workers.killed)
        in_killed = {int(n) for pid, n in starts if int(pid) in workers.killed}
        # A task ran more than once only because an earlier run was in a killed worker.
        assert max(by_survivors.values()) == 1, workers.report()
        reruns = [n for n, count in Counter(int(n) for _, n in starts).items() if count > 1]
        assert set(reruns) <= in_killed
        assert in_killed, "the kills hit no running task; the test proved nothing"
        assert await finished() == set(range(total))

        [stats] = await tasks.driver.stats([queue])
        assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)
    finally:
        workers.stop_all()
        await results.delete(f"{key}:started", f"{key}:done")
        await tasks.driver.purge(queue)
        await results.aclose()
        await tasks.driver.close()


async def _at_least(finished: object, count: int) -> bool:
    return len(await finished()) >= count  # type: ignore[operator]


async def test_a_task_that_kills_its_worker_ends_as_a_dead_letter(
    tasks: ModuleType, tmp_path: Path
) -> None:
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    key = f"{{{tasks.PREFIX}:{queue}}}:results"
    results = Redis.from_url(tasks.URL)
    workers = Workers(queue, tmp_path)
    try:
        task_id = await tasks.kill_my_worker(key).on_queue(queue).dispatch()
        deadline = time.monotonic() + 60
        while not await tasks.driver.list_dead_letters(queue=queue):
            assert time.monotonic() < deadline, workers.report()
            if not any(p.poll() is None for p in workers.procs.values()):
                for pid in [p for p, proc in workers.procs.items() if proc.poll() is not None]:
                    workers.killed.add(pid)
                    del workers.procs[pid]
                workers.start(concurrency=1)
            await asyncio.sleep(0.1)

        [dead] = await tasks.driver.list_dead_letters(queue=queue)
        assert dead.task_id == task_id
        assert dead.failure.exception_type.endswith("TaskLostError")
        assert dead.attempts == 3  # two runs that killed their worker, then dead-lettered
        assert await results.llen(f"{key}:started") == 2
        assert len(workers.killed) == 2
    finally:
        workers.stop_all()
        await results.delete(f"{key}:started")
        await tasks.driver.purge_dead_letters(queue=queue)
        await results.aclose()
        await tasks.driver.close()
