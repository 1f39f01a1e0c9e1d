"""Crash tests: real worker processes, SIGKILLed mid-run, lose no task.

Workers are subprocesses running `rabbitmq_crash_worker.py` (core's `Worker` on a
`RabbitMQDriver`); tasks come from `rabbitmq_crash_tasks.py` and record every start and finish
in files. A killed worker's connection dies with it, and RabbitMQ puts back everything it held:
the tasks it was running and those it had prefetched.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType

import pytest

from asynctasq import dispatch_many
from asynctasq.testing.crash import WorkerProcesses, assert_at_least_once, wait_until

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow


@pytest.fixture
async def tasks(rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ModuleType]:
    """`rabbitmq_crash_tasks` on a fresh namespace, importable by name as the workers do."""
    namespace = uuid.uuid4().hex[:10]
    monkeypatch.setenv("ASYNCTASQ_TEST_RABBITMQ_URL", rabbitmq_url)
    monkeypatch.setenv("ASYNCTASQ_CRASH_EXCHANGE", f"asynctasq-crash-{namespace}")
    monkeypatch.setenv("ASYNCTASQ_CRASH_PREFIX", f"crash{namespace}.")
    monkeypatch.syspath_prepend(str(HERE))
    sys.modules.pop("rabbitmq_crash_tasks", None)
    module = importlib.import_module("rabbitmq_crash_tasks")
    yield module
    try:
        await module.driver.delete_topology()
    finally:
        await module.driver.close()
        sys.modules.pop("rabbitmq_crash_tasks", None)


def _lines(path: Path) -> list[list[str]]:
    return [line.split(":") for line in path.read_text().split()] if path.exists() else []


def _runs(path: Path) -> list[tuple[int, int]]:
    return [(int(pid), int(n)) for pid, n in _lines(path)]


def _busy_or_done(
    started_by: Callable[[int], int], pid: int, finished: Callable[[], set[int]], total: int
) -> bool:
    return started_by(pid) >= 3 or len(finished()) >= total


async def test_sigkilled_workers_lose_nothing(tasks: ModuleType, tmp_path: Path) -> None:
    queue = "crash"
    base = tmp_path / "record"
    started, done = Path(f"{base}.started"), Path(f"{base}.done")
    total = 1000
    workers = WorkerProcesses(HERE / "rabbitmq_crash_worker.py", [queue], tmp_path)
    try:
        await dispatch_many([tasks.record(str(base), n).on_queue(queue) for n in range(total)])
        victim = workers.start("5")
        workers.start("5")

        def finished() -> set[int]:
            return {int(n) for _, n in _lines(done)}

        def started_by(pid: int) -> int:
            return sum(1 for who, _ in _lines(started) if int(who) == pid)

        # Kill the same worker slot up to four times, each time once it is running tasks,
        # and restart it.
        kills = 0
        while kills < 4:
            await wait_until(
                functools.partial(_busy_or_done, started_by, victim, finished, total),
                60,
                "the victim to run tasks",
                workers.report,
            )
            if len(finished()) >= total:
                break
            workers.kill(victim)
            kills += 1
            victim = workers.start("5")
        assert kills >= 2, "the work ran out before the kills; make the tasks slower"
        await wait_until(lambda: len(finished()) >= total, 90, "every task", workers.report)
        assert_at_least_once(_runs(started), _runs(done), workers.killed, total)

        deadline = time.monotonic() + 20
        while True:  # both live workers subscribed, nothing left anywhere
            [stats] = await tasks.driver.stats([queue])
            counts = (stats.ready, stats.delayed, stats.dead, stats.extra["consumers"])
            if counts == (0, 0, 0, 2) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert counts == (0, 0, 0, 2), workers.report()
    finally:
        workers.stop_all()


async def test_a_task_that_kills_its_worker_ends_as_a_dead_letter(
    tasks: ModuleType, tmp_path: Path
) -> None:
    queue = "poison"
    base = tmp_path / "poison"
    workers = WorkerProcesses(HERE / "rabbitmq_crash_worker.py", [queue], tmp_path)
    try:
        task_id = await tasks.kill_my_worker(str(base)).on_queue(queue).dispatch()
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
        # Quorum queues count each return: two runs killed their worker, the third delivery
        # was dead-lettered without running.
        assert dead.attempts == 3
        assert len(_lines(Path(f"{base}.started"))) == 2
        workers.reap()
        assert len(workers.killed) == 2
    finally:
        workers.stop_all()


async def test_a_busy_worker_sees_no_false_redeliveries(tasks: ModuleType, tmp_path: Path) -> None:
    """A worker acks a moment after asking for more work; that must never count a delivery
    that did not happen (re-subscribing a quorum queue consumer would)."""
    from asynctasq.worker import Worker

    queue = "busy"
    base = tmp_path / "busy"
    total = 1500
    await dispatch_many([tasks.record(str(base), n).on_queue(queue) for n in range(total)])
    worker = Worker(
        driver=tasks.make_driver(),
        queues=[queue],
        concurrency=10,
        burst=True,
        allowed_roots=[str(HERE)],
        install_signal_handlers=False,
    )
    await asyncio.wait_for(worker.run(), 120)
    starts = Counter(int(n) for _, n in _lines(Path(f"{base}.started")))
    assert set(starts) == set(range(total))
    assert max(starts.values()) == 1
    assert (worker.stats.succeeded, worker.stats.dead_lettered) == (total, 0)
