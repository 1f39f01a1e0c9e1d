"""Crash tests: real worker processes, SIGKILLed mid-run, lose no task.

Workers are subprocesses running `crash_worker.py` (core's `Worker` on a `RedisDriver`);
tasks come from `crash_tasks.py` and record every start and finish in Redis.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from redis.asyncio import Redis

from asynctasq import dispatch_many
from asynctasq.testing.crash import WorkerProcesses, assert_at_least_once, wait_until

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


async def idle(results: Redis, pid: int) -> bool:
    """Whether worker `pid` finished starting up and waits for work."""
    clients = await results.client_list()
    return any(c.get("name") == f"crash-{pid}" and c.get("cmd") == "blmove" for c in clients)


async def test_sigkilled_workers_lose_nothing(tasks: ModuleType, tmp_path: Path) -> None:
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    key = f"{{{tasks.PREFIX}:{queue}}}:results"
    total, rounds = 1000, 4
    chunk = total // (rounds + 1)
    results = Redis.from_url(tasks.URL)
    workers = WorkerProcesses(HERE / "crash_worker.py", [queue], tmp_path)

    async def entries(name: str) -> list[tuple[int, int]]:
        raw = await results.lrange(f"{key}:{name}", 0, -1)
        return [(int(pid), int(n)) for pid, n in (e.split(b":") for e in raw)]

    async def started_by(pid: int, numbers: range) -> bool:
        return sum(1 for p, n in await entries("started") if p == pid and n in numbers) >= 10

    async def all_done() -> bool:
        return {n for _, n in await entries("done")} == set(range(total))

    try:
        workers.start("5")  # the worker that is never killed
        victim = workers.start("5")
        # Each round: once the (re)started victim is waiting for work, queue a chunk; once it
        # has started tasks from that chunk, SIGKILL it mid-run and start it again.
        for i in range(rounds):
            numbers = range(i * chunk, (i + 1) * chunk)
            await wait_until(lambda v=victim: idle(results, v), 60, "victim ready", workers.report)
            await dispatch_many([tasks.record(key, n).on_queue(queue) for n in numbers])
            await wait_until(
                lambda v=victim, r=numbers: started_by(v, r), 60, "victim busy", workers.report
            )
            workers.kill(victim)
            victim = workers.start("5")
        last = range(rounds * chunk, total)
        await dispatch_many([tasks.record(key, n).on_queue(queue) for n in last])

        await wait_until(all_done, 90, "every task done", workers.report)
        assert_at_least_once(await entries("started"), await entries("done"), workers.killed, total)

        # A task records "done" before its worker acknowledges it (acks are batched and
        # sent a moment later): the last leases end shortly after the last record.
        async def settled() -> bool:
            [stats] = await tasks.driver.stats([queue])
            return (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)

        await wait_until(settled, 30, "every lease acknowledged", workers.report)
    finally:
        workers.stop_all()
        await results.delete(f"{key}:started", f"{key}:done")
        await tasks.driver.purge(queue)
        await results.aclose()
        await tasks.driver.close()


async def test_a_task_that_kills_its_worker_ends_as_a_dead_letter(
    tasks: ModuleType, tmp_path: Path
) -> None:
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    key = f"{{{tasks.PREFIX}:{queue}}}:results"
    results = Redis.from_url(tasks.URL)
    workers = WorkerProcesses(HERE / "crash_worker.py", [queue], tmp_path)
    try:
        task_id = await tasks.kill_my_worker(key).on_queue(queue).dispatch()
        deadline = time.monotonic() + 60
        while not await tasks.driver.list_dead_letters(queue=queue):
            assert time.monotonic() < deadline, workers.report()
            workers.reap()
            if not workers.procs:
                workers.start("1")
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
