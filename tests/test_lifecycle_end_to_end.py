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
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import asynctasq
import asynctasq.config as config_module
from asynctasq import TaskState
from asynctasq.config import set_global_config
from asynctasq.drivers.connections import get_driver
from asynctasq.lifecycle.events import EventType
from asynctasq.testing.crash import wait_until

pytestmark = pytest.mark.slow

URLS = {
    "redis": os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "postgres": os.environ.get(
        "ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get("ASYNCTASQ_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306/test"),
}
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


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture(params=["redis", "postgres", "mysql", "sqlite"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    name: str = request.param
    tag = uuid.uuid4().hex[:10]
    section: dict[str, Any]
    if name == "sqlite":
        section = {"path": str(tmp_path / "queue.db")}
    else:
        if not _reachable(URLS[name]):
            _unavailable(f"{name} is not reachable at {URLS[name]}")
        if name == "redis":
            section = {"url": URLS[name], "prefix": f"lc-{tag}"}
        elif name == "postgres":
            section = {"dsn": URLS[name], "schema": f"lc_{tag}", "auto_migrate": True}
        else:
            section = {
                "dsn": URLS[name],
                "queue_table": f"lc_{tag}_q",
                "dead_letter_table": f"lc_{tag}_d",
            }
    root = tmp_path / "app"
    root.mkdir()
    (root / "lc_e2e_tasks.py").write_text(TASKS)
    (root / "worker.py").write_text(WORKER)
    config = {"driver": name, name: section, "events": {"enabled": True}}
    s = Setup(name, config, root)
    saved = config_module.configured()
    set_global_config(**{"driver": name, name: section, "events": {"enabled": True}})
    sys.path.insert(0, str(root))
    try:
        if name == "postgres":
            driver = await get_driver()
            await driver.init_schema()  # type: ignore[attr-defined]
        yield s
    finally:
        for proc in s.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        sys.path.remove(str(root))
        sys.modules.pop("lc_e2e_tasks", None)
        await (await get_driver()).close()
        config_module.use_config(saved)  # the configuration the rest of the session had
        await _drop(name, section, tag)


async def _drop(name: str, section: dict[str, Any], tag: str) -> None:
    if name == "redis":
        from redis.asyncio import Redis

        r = Redis.from_url(section["url"])
        try:
            keys = [k async for k in r.scan_iter(match=f"*{section['prefix']}*", count=1000)]
            if keys:
                await r.delete(*keys)
        finally:
            await r.aclose()
    elif name == "postgres":
        import asyncpg

        conn = await asyncpg.connect(section["dsn"])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{section["schema"]}" CASCADE')
        finally:
            await conn.close()
    elif name == "mysql":
        import aiomysql

        from asynctasq_mysql import parse_dsn

        conn = await aiomysql.connect(**parse_dsn(section["dsn"]).connect_kwargs())
        try:
            async with conn.cursor() as cur:
                await cur.execute("SET SESSION sql_notes = 0")
                await cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name LIKE %s",
                    (f"lc\\_{tag}\\_%",),
                )
                for (table,) in await cur.fetchall():
                    await cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        finally:
            conn.close()


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
