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

    @staticmethod
    async def idle(results: Redis, pid: int) -> bool:
        """Whether worker `pid` finished starting up and waits for work."""
        clients = await results.client_list()
        return any(c.get("name") == f"crash-{pid}" and c.get("cmd") == "blmove" for c in clients)

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
    total, rounds = 1000, 4
    chunk = total // (rounds + 1)
    results = Redis.from_url(tasks.URL)
    workers = Workers(queue, tmp_path)

    async def entries(name: str) -> list[tuple[int, int]]:
        raw = await results.lrange(f"{key}:{name}", 0, -1)
        return [(int(pid), int(n)) for pid, n in (e.split(b":") for e in raw)]

    async def started_by(pid: int, numbers: range) -> bool:
        return sum(1 for p, n in await entries("started") if p == pid and n in numbers) >= 10

    async def dispatch(numbers: range) -> None:
        await dispatch_many([tasks.record(key, n).on_queue(queue) for n in numbers])

    try:
        workers.start()  # the worker that is never killed
        victim = workers.start()
        # Each round: once the (re)started victim is waiting for work, queue a chunk; once it
        # has started tasks from that chunk, SIGKILL it mid-run and start it again.
        for i in range(rounds):
            numbers = range(i * chunk, (i + 1) * chunk)
            await _wait_until(lambda v=victim: workers.idle(results, v), 60, "victim ready")
            await dispatch(numbers)
            await _wait_until(lambda v=victim, r=numbers: started_by(v, r), 60, "victim busy")
            workers.kill(victim)
            victim = workers.start()
        await dispatch(range(rounds * chunk, total))

        async def all_done() -> bool:
            return {n for _, n in await entries("done")} == set(range(total))

        await _wait_until(all_done, 90, "every task done")
        starts, done = await entries("started"), await entries("done")
        survivors = Counter(n for pid, n in starts if pid not in workers.killed)
        # A task ran more than once only because an earlier run was in a killed worker.
        assert max(survivors.values()) == 1, workers.report()
        reruns = {n for n, count in Counter(n for _, n in starts).items() if count > 1}
        assert reruns <= {n for pid, n in starts if pid in workers.killed}
        # Runs the kills cut short: started in a killed worker, finished there never.
        interrupted = {(pid, n) for pid, n in starts if pid in workers.killed} - set(done)
        assert interrupted, "no kill hit a running task; the test proved nothing"

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
