"""The task lifecycle with real worker processes on real servers.

* a worker killed with SIGKILL disappears from the live workers once its heartbeat expires;
* a running task is cancelled: the worker hears of it within 1 s on Redis and PostgreSQL
  (pushed) and within the poll interval on MySQL and SQLite; the other tasks go on;
* one task's life arrives as events in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.servers import installed, section

import asynctasq
from asynctasq import TaskState
from asynctasq.lifecycle.events import EventType
from asynctasq.testing.crash import wait_until

pytestmark = pytest.mark.slow

PUSHED = {"redis", "postgres"}

TASKS = textwrap.dedent(
    """
    import asyncio

    from asynctasq import task


    @task(queue="lc-e2e", track=True, max_attempts=3)
    async def nap(key: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return key
    """
)

WORKER = textwrap.dedent(
    """
    import asyncio
    import json
    import logging
    import sys

    from asynctasq import init
    from asynctasq.worker import Worker

    import lc_e2e_tasks  # noqa: F401 - registers the task

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    init(json.loads(sys.argv[1]))
    worker = Worker(queues=["lc-e2e"], concurrency=20, poll_wait=0.2, heartbeat_interval=0.3)
    print("worker", worker.worker_id, flush=True)
    asyncio.run(worker.run())
    """
)


@dataclass
class Setup:
    name: str
    config: dict[str, Any]
    root: Path
    cleanups: list[Callable[[], Any]] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASQ_")}
        env["PYTHONPATH"] = str(self.root)
        log = open(self.root / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "worker.py", json.dumps(self.config)],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.root.glob("*.log"))


@pytest.fixture(params=["redis", "postgres", "mysql", "sqlite"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    name: str = request.param
    where = section(name, "lc", tmp_path)
    root = tmp_path / "app"
    root.mkdir()
    (root / "lc_e2e_tasks.py").write_text(TASKS)
    (root / "worker.py").write_text(WORKER)
    events_on = {"events": {"enabled": True}}
    s = Setup(name, where.settings(**events_on), root)
    async with installed(where, **events_on):
        sys.path.insert(0, str(root))
        try:
            yield s
        finally:
            for proc in s.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            sys.path.remove(str(root))
            sys.modules.pop("lc_e2e_tasks", None)


async def until(check: Callable[[], Any], within: float, what: str, setup: Setup) -> None:
    await wait_until(check, within, what, setup.logs)


async def _state(task_id: str) -> TaskState | None:
    found = await asynctasq.status(task_id)
    return None if found is None else found.state


async def test_a_sigkilled_worker_leaves_the_live_workers(setup: Setup) -> None:
    survivor, victim = setup.start_worker(), setup.start_worker()

    async def both() -> bool:
        pids = {w.pid for w in await asynctasq.list_workers()}
        return {survivor.pid, victim.pid} <= pids

    await until(both, 30, "both workers registered", setup)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()

    async def gone() -> bool:
        return victim.pid not in {w.pid for w in await asynctasq.list_workers()}

    await until(gone, 10, "the killed worker expired", setup)
    # Its record lived until its heartbeat expired (3 intervals of 0.3 s), not forever.
    assert time.monotonic() - killed_at < 5
    assert survivor.pid in {w.pid for w in await asynctasq.list_workers()}


async def test_cancelling_a_running_task_reaches_the_worker(setup: Setup) -> None:
    import lc_e2e_tasks

    setup.start_worker()
    ids = [await lc_e2e_tasks.nap(f"k{n}", 2.0).dispatch() for n in range(5)]

    async def all_running() -> bool:
        return all([await _state(i) == TaskState.RUNNING for i in ids])

    await until(all_running, 30, "all running", setup)
    victim = ids[2]
    asked = time.monotonic()
    await victim.cancel()

    async def cancelled() -> bool:
        return await _state(victim) == TaskState.CANCELLED

    await until(cancelled, 5, "the running task cancelled", setup)
    took = time.monotonic() - asked
    # Pushed to the worker on Redis and PostgreSQL; polled every second elsewhere. The bound
    # includes writing and reading the status record back.
    assert took < (1.0 if setup.name in PUSHED else 2.5), took
    for other in ids[:2] + ids[3:]:
        await until(lambda o=other: _is(o, TaskState.SUCCEEDED), 30, "others succeed", setup)


async def _is(task_id: str, state: TaskState) -> bool:
    return await _state(task_id) == state


async def test_one_task_life_arrives_as_events_in_order(setup: Setup) -> None:
    import lc_e2e_tasks

    got: list[Any] = []

    async def listen() -> None:
        async for event in asynctasq.events.subscribe(wait=0.5):
            got.append(event)  # noqa: PERF401 - read while it fills

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.5)  # subscribed at the tail before anything happens
    proc = setup.start_worker()
    task_id = await lc_e2e_tasks.nap("e", 0.2).dispatch()
    await until(
        lambda: any(e.type == EventType.TASK_SUCCEEDED and e.task_id == task_id for e in got),
        30,
        "task-succeeded",
        setup,
    )
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    await until(lambda: any(e.type == EventType.WORKER_OFFLINE for e in got), 10, "offline", setup)
    listener.cancel()
    mine = [e.type for e in got if e.task_id == task_id]
    assert mine == [EventType.TASK_ENQUEUED, EventType.TASK_STARTED, EventType.TASK_SUCCEEDED]
    kinds = [e.type for e in got]
    assert kinds.index(EventType.WORKER_ONLINE) < kinds.index(EventType.TASK_STARTED)
    assert kinds.index(EventType.TASK_SUCCEEDED) < kinds.index(EventType.WORKER_OFFLINE)
