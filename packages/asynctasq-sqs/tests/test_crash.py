"""Crash tests: real worker processes on SQS (moto), SIGKILLed mid-run, lose no task.

Workers are subprocesses running `sqs_crash_worker.py` (core's `Worker` on an `SQSDriver`);
tasks come from `sqs_crash_tasks.py` and record every start and finish in local files.
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
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from asynctasq import dispatch_many

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


class Workers:
    """Worker subprocesses for one queue; logs go to files for the failure report."""

    def __init__(self, queue: str, results: Path) -> None:
        self.queue = queue
        self.results = results
        self.logs = results / "logs"
        self.logs.mkdir()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()

    def start(self, concurrency: int = 5) -> int:
        log = open(self.logs / f"worker-{len(self.procs) + len(self.killed)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "sqs_crash_worker.py"), self.queue, str(concurrency)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=HERE,
        )
        log.close()
        self.procs[proc.pid] = proc
        return proc.pid

    def ready(self, pid: int) -> bool:
        return (self.results / f"ready-{pid}").exists()

    def kill(self, pid: int) -> None:
        proc = self.procs.pop(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.killed.add(pid)

    def reap(self) -> None:
        """Count workers that died by themselves as killed."""
        for pid in [p for p, proc in self.procs.items() if proc.poll() is not None]:
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
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs.iterdir())


async def _wait_until(
    check: Callable[[], bool], within: float, what: str, workers: Workers
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{workers.report()}")


async def test_sigkilled_workers_lose_nothing(tasks: ModuleType, tmp_path: Path) -> None:
    queue = "work"
    total, rounds = 300, 3
    chunk = total // (rounds + 1)
    workers = Workers(queue, tmp_path)

    def started_by(pid: int, numbers: range) -> bool:
        return sum(1 for p, n in tasks.entries("started") if p == pid and n in numbers) >= 5

    async def dispatch(numbers: range) -> None:
        await dispatch_many([tasks.record(n).on_queue(queue) for n in numbers])

    try:
        workers.start()  # the worker that is never killed
        victim = workers.start()
        # Each round: once the (re)started victim is about to take work, queue a chunk; once
        # it has started tasks from that chunk, SIGKILL it mid-run and start it again.
        for i in range(rounds):
            numbers = range(i * chunk, (i + 1) * chunk)
            await _wait_until(lambda v=victim: workers.ready(v), 60, "victim ready", workers)
            await dispatch(numbers)
            await _wait_until(
                lambda v=victim, r=numbers: started_by(v, r), 60, "victim busy", workers
            )
            workers.kill(victim)
            victim = workers.start()
        await dispatch(range(rounds * chunk, total))

        def all_done() -> bool:
            return {n for _, n in tasks.entries("done")} == set(range(total))

        await _wait_until(all_done, 120, "every task done", workers)
        starts, done = tasks.entries("started"), tasks.entries("done")
        survivors = Counter(n for pid, n in starts if pid not in workers.killed)
        # A task ran more than once only because an earlier run was in a killed worker.
        assert max(survivors.values()) == 1, workers.report()
        reruns = {n for n, count in Counter(n for _, n in starts).items() if count > 1}
        assert reruns <= {n for pid, n in starts if pid in workers.killed}
        # Runs the kills cut short: started in a killed worker, finished there never.
        interrupted = {(pid, n) for pid, n in starts if pid in workers.killed} - set(done)
        assert interrupted, "no kill hit a running task; the test proved nothing"

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
    workers = Workers(queue, tmp_path)
    try:
        task_id = await tasks.kill_my_worker().on_queue(queue).dispatch()
        deadline = time.monotonic() + 90
        while not await tasks.driver.list_dead_letters(queue=queue):
            assert time.monotonic() < deadline, workers.report()
            workers.reap()
            if not workers.procs:
                workers.start(concurrency=1)
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
