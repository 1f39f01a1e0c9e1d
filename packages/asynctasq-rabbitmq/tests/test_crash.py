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
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType

import pytest

from asynctasq import dispatch_many

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


class Workers:
    """Worker subprocesses for one queue; logs go to files for the failure report."""

    def __init__(self, queue: str, logs: Path) -> None:
        self.queue = queue
        self.logs = logs
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()

    def start(self, concurrency: int = 5) -> int:
        number = len(self.procs) + len(self.killed)
        with open(self.logs / f"worker-{number}.log", "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "rabbitmq_crash_worker.py"),
                    self.queue,
                    str(concurrency),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=HERE,
                env=os.environ.copy(),
            )
        self.procs[proc.pid] = proc
        return proc.pid

    def kill(self, pid: int) -> None:
        proc = self.procs.pop(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.killed.add(pid)

    def reap(self) -> None:
        """Count workers that died by themselves as killed."""
        for pid, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.killed.add(pid)
                del self.procs[pid]

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
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs.glob("*.log"))


def _lines(path: Path) -> list[list[str]]:
    return [line.split(":") for line in path.read_text().split()] if path.exists() else []


def _busy_or_done(
    started_by: Callable[[int], int], pid: int, finished: Callable[[], set[int]], total: int
) -> bool:
    return started_by(pid) >= 3 or len(finished()) >= total


async def _wait_until(
    check: Callable[[], bool], within: float, what: str, report: str = ""
) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{report}")
        await asyncio.sleep(0.05)


async def test_sigkilled_workers_lose_nothing(tasks: ModuleType, tmp_path: Path) -> None:
    queue = "crash"
    base = tmp_path / "record"
    started, done = Path(f"{base}.started"), Path(f"{base}.done")
    total = 1000
    workers = Workers(queue, tmp_path)
    try:
        await dispatch_many([tasks.record(str(base), n).on_queue(queue) for n in range(total)])
        victim = workers.start()
        workers.start()

        def finished() -> set[int]:
            return {int(n) for _, n in _lines(done)}

        def started_by(pid: int) -> int:
            return sum(1 for who, _ in _lines(started) if int(who) == pid)

        # Kill the same worker slot up to four times, each time once it is running tasks,
        # and restart it.
        kills = 0
        while kills < 4:
            await _wait_until(
                functools.partial(_busy_or_done, started_by, victim, finished, total),
                60,
                "the victim to run tasks",
                workers.report(),
            )
            if len(finished()) >= total:
                break
            workers.kill(victim)
            kills += 1
            victim = workers.start()
        assert kills >= 2, "the work ran out before the kills; make the tasks slower"
        await _wait_until(lambda: len(finished()) >= total, 90, "every task", workers.report())

        starts = _lines(started)
        by_survivors = Counter(int(n) for pid, n in starts if int(pid) not in workers.killed)
        in_killed = {int(n) for pid, n in starts if int(pid) in workers.killed}
        # A task ran more than once only because an earlier run was in a killed worker.
        assert max(by_survivors.values()) == 1, workers.report()
        reruns = {n for n, count in Counter(int(n) for _, n in starts).items() if count > 1}
        assert reruns <= in_killed
        assert in_killed, "the kills hit no running task; the test proved nothing"
        assert finished() == set(range(total))

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
    workers = Workers(queue, tmp_path)
    try:
        task_id = await tasks.kill_my_worker(str(base)).on_queue(queue).dispatch()
        deadline = time.monotonic() + 60
        while not await tasks.driver.list_dead_letters(queue=queue):
            assert time.monotonic() < deadline, workers.report()
            workers.reap()
            if not workers.procs:
                workers.start(concurrency=1)
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
