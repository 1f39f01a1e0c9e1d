"""Crash tests: real worker processes on SQS (moto), SIGKILLed mid-run, lose no task.

Workers are subprocesses running `sqs_crash_worker.py` (core's `Worker` on an `SQSDriver`);
tasks come from `sqs_crash_tasks.py` and record every start and finish in local files.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from asynctasq import dispatch_many
from asynctasq.testing.crash import WorkerProcesses, assert_at_least_once, wait_until

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def tasks(sqs_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`sqs_crash_tasks`, importable by name as the worker processes import it, set up for
    this test's endpoint, queue prefix and results directory (inherited by the workers)."""
    monkeypatch.setenv("ASYNCTASQ_TEST_SQS_ENDPOINT", sqs_endpoint)
    monkeypatch.setenv("ASYNCTASQ_CRASH_PREFIX", f"c{uuid.uuid4().hex[:8]}-")
    monkeypatch.setenv("ASYNCTASQ_CRASH_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(HERE))
    sys.modules.pop("sqs_crash_tasks", None)  # read this test's environment
    module = importlib.import_module("sqs_crash_tasks")
    assert tmp_path == module.RESULTS
    return module


async def test_sigkilled_workers_lose_nothing(tasks: ModuleType, tmp_path: Path) -> None:
    queue = "work"
    total, rounds = 300, 3
    chunk = total // (rounds + 1)
    workers = WorkerProcesses(HERE / "sqs_crash_worker.py", [queue], tmp_path / "logs")

    def ready(pid: int) -> bool:
        return (tmp_path / f"ready-{pid}").exists()

    def started_by(pid: int, numbers: range) -> bool:
        return sum(1 for p, n in tasks.entries("started") if p == pid and n in numbers) >= 5

    async def dispatch(numbers: range) -> None:
        await dispatch_many([tasks.record(n).on_queue(queue) for n in numbers])

    try:
        workers.start("5")  # the worker that is never killed
        victim = workers.start("5")
        # Each round: once the (re)started victim is about to take work, queue a chunk; once
        # it has started tasks from that chunk, SIGKILL it mid-run and start it again.
        for i in range(rounds):
            numbers = range(i * chunk, (i + 1) * chunk)
            await wait_until(lambda v=victim: ready(v), 60, "victim ready", workers.report)
            await dispatch(numbers)
            await wait_until(
                lambda v=victim, r=numbers: started_by(v, r), 60, "victim busy", workers.report
            )
            workers.kill(victim)
            victim = workers.start("5")
        await dispatch(range(rounds * chunk, total))

        def all_done() -> bool:
            return {n for _, n in tasks.entries("done")} == set(range(total))

        await wait_until(all_done, 120, "every task done", workers.report)
        assert_at_least_once(tasks.entries("started"), tasks.entries("done"), workers.killed, total)

        await asyncio.sleep(0.5)  # the last acks of the survivors
        [stats] = await tasks.driver.stats([queue])
        assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)
    finally:
        workers.stop_all()
        await tasks.driver.close()


async def test_a_task_that_kills_its_worker_ends_as_a_dead_letter(
    tasks: ModuleType, tmp_path: Path
) -> None:
    queue = "killer"
    workers = WorkerProcesses(HERE / "sqs_crash_worker.py", [queue], tmp_path / "logs")
    try:
        task_id = await tasks.kill_my_worker().on_queue(queue).dispatch()
        deadline = time.monotonic() + 90
        while not await tasks.driver.list_dead_letters(queue=queue):
            assert time.monotonic() < deadline, workers.report()
            workers.reap()
            if not workers.procs:
                workers.start("1")
            await asyncio.sleep(0.2)

        [dead] = await tasks.driver.list_dead_letters(queue=queue)
        assert dead.task_id == task_id
        assert dead.failure.exception_type.endswith("TaskLostError")
        assert dead.attempts == 3  # two runs that killed their worker, then dead-lettered
        assert len(tasks.entries("started")) == 2
        assert len(workers.killed) == 2
    finally:
        workers.stop_all()
        await tasks.driver.close()
