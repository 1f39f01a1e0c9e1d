"""``asynctasq worker`` as a real process (the installed console script) against a real driver:
sqlite in a temporary file, and Redis (db 15) when it is reachable.

Graceful shutdown: SIGTERM mid-task lets the task finish within ``--shutdown-timeout``;
past it the task is given back (ready again, its delivery not counted). A second SIGTERM
gives everything back at once. Every case exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cli_test_tasks as t
import pytest
from cli_testing import REDIS_URL, TASKS_DIR, enqueue, lines, require_redis, stats

from asynctasq.drivers.base import Driver

SCRIPT = Path(sys.executable).with_name("asynctasq")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT} is not installed (uv sync)"),
]


@dataclass
class Backend:
    """A driver for the test process and the matching worker options."""

    name: str
    make: Callable[[], Driver]
    args: list[str]


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        pytest.importorskip("asynctasq_sqlite")
        from asynctasq_sqlite import SqliteDriver

        path = str(tmp_path / "queue.db")
        yield Backend(
            "sqlite", lambda: SqliteDriver(path=path), ["--driver", "sqlite", "-o", f"path={path}"]
        )
        return
    require_redis()
    from asynctasq_redis import RedisDriver

    prefix = f"clitest-{uuid.uuid4().hex[:8]}"
    yield Backend(
        "redis",
        lambda: RedisDriver(url=REDIS_URL, prefix=prefix),
        ["--driver", "redis", "-o", f"url={REDIS_URL}", "-o", f"prefix={prefix}"],
    )

    async def clean() -> None:
        driver = RedisDriver(url=REDIS_URL, prefix=prefix)
        await driver.connect()
        try:
            await driver.purge("cli-a")
            await driver.purge_dead_letters()
            await driver.release(await driver.dequeue(["cli-a"], limit=100, wait=0))
            await driver.purge("cli-a")
        finally:
            await driver.close()

    asyncio.run(clean())


def worker_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ASYNCTASQ_") or k.startswith("ASYNCTASQ_TEST_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def worker(backend: Backend, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``asynctasq worker`` with the test tasks imported; kill it if a test fails."""
    command = [
        str(SCRIPT),
        "worker",
        *backend.args,
        "--import",
        "cli_test_tasks",
        "--allowed-root",
        str(TASKS_DIR),
        "--queues",
        "cli-a",
        *args,
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env()
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"worker exited early ({proc.returncode}): {proc.communicate()[1]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear in {timeout} s")
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, float]:
    """Wait for the worker to exit; (exit code, stderr, seconds it took)."""
    started = time.monotonic()
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err, time.monotonic() - started


def first_delivery_attempts(driver: Driver) -> int:
    async def take() -> int:
        await driver.connect()
        try:
            [delivery] = await driver.dequeue(["cli-a"], limit=1, wait=1)
            await driver.ack([delivery])
            return delivery.attempts
        finally:
            await driver.close()

    return asyncio.run(take())


def test_sigterm_lets_the_running_task_finish_within_the_deadline(
    backend: Backend, markers: Path
) -> None:
    driver = backend.make()
    enqueue(driver, [t.sleepy(str(markers), "first", 1.5), t.sleepy(str(markers), "second", 0)])
    with worker(backend, "--concurrency", "1", "--shutdown-timeout", "20") as proc:
        wait_for(markers / "first.started", proc)
        proc.send_signal(signal.SIGTERM)
        code, err, _ = finish(proc, 30)
    assert code == 0, err
    assert lines(markers / "first.done"), err
    assert not (markers / "second.started").exists()  # no new work after the signal
    assert "SIGTERM: finishing running tasks (up to 20 s)" in err
    assert "worker stopped: processed 1, succeeded 1" in err
    assert stats(backend.make(), "cli-a") == (1, 0, 0, 0)  # the second is still queued


def test_sigterm_past_the_deadline_gives_the_task_back(backend: Backend, markers: Path) -> None:
    enqueue(backend.make(), [t.sleepy(str(markers), "slow", 60)])
    with worker(backend, "--shutdown-timeout", "1") as proc:
        wait_for(markers / "slow.started", proc)
        proc.send_signal(signal.SIGTERM)
        code, err, took = finish(proc, 30)
    assert code == 0, err
    assert took < 20, err  # the task sleeps 60 s; generous for loaded machines
    assert not (markers / "slow.done").exists()
    assert "still running at the shutdown deadline: giving them back" in err
    assert "given back 1" in err
    assert stats(backend.make(), "cli-a") == (1, 0, 0, 0)
    assert first_delivery_attempts(backend.make()) == 0  # the release did not count it


def test_second_sigterm_exits_at_once(backend: Backend, markers: Path) -> None:
    enqueue(backend.make(), [t.sleepy(str(markers), "stuck", 60)])
    with worker(backend, "--shutdown-timeout", "60") as proc:
        wait_for(markers / "stuck.started", proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting for the task (deadline 60 s)
        proc.send_signal(signal.SIGTERM)
        code, err, took = finish(proc, 30)
    assert code == 0, err
    assert took < 20, err  # the task sleeps 60 s; generous for loaded machines
    assert "second SIGTERM: stopping now" in err
    assert not (markers / "stuck.done").exists()
    assert stats(backend.make(), "cli-a") == (1, 0, 0, 0)


def test_second_sigterm_does_not_wait_for_a_task_in_a_thread(
    backend: Backend, markers: Path
) -> None:
    enqueue(backend.make(), [t.sync_sleepy(str(markers), "thread", 60)])
    with worker(backend, "--shutdown-timeout", "60") as proc:
        wait_for(markers / "thread.started", proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code, err, took = finish(proc, 30)
    assert code == 0, err
    assert took < 20, err  # the task sleeps 60 s; generous for loaded machines
    assert stats(backend.make(), "cli-a") == (1, 0, 0, 0)


def test_a_task_in_a_thread_past_the_deadline_does_not_hold_the_exit(
    backend: Backend, markers: Path
) -> None:
    enqueue(backend.make(), [t.sync_sleepy(str(markers), "thread", 60)])
    with worker(backend, "--shutdown-timeout", "1") as proc:
        wait_for(markers / "thread.started", proc)
        proc.send_signal(signal.SIGTERM)
        code, err, took = finish(proc, 30)
    assert code == 0, err
    assert took < 20, err  # the task sleeps 60 s; generous for loaded machines
    assert "exiting without waiting for them" in err
    assert stats(backend.make(), "cli-a") == (1, 0, 0, 0)


def test_burst_with_json_logs_over_a_pipe(backend: Backend, markers: Path) -> None:
    enqueue(
        backend.make(),
        [t.record(str(markers), "r") for _ in range(5)] + [t.fail(str(markers), "bad")],
    )
    with worker(backend, "--burst", "--log-format", "json") as proc:
        code, err, _ = finish(proc, 60)
    assert code == 0, err
    assert lines(markers / "r") == ["ran"] * 5
    records = [json.loads(line) for line in err.splitlines()]
    started = next(r for r in records if r.get("event") == "worker_started")
    assert started["driver"].startswith(backend.name) and started["burst"] is True
    assert records[-1]["message"].startswith(
        "worker stopped: processed 6, succeeded 5, retried 0, dead-lettered 1"
    )
    assert stats(backend.make(), "cli-a") == (0, 0, 0, 1)


def test_unreachable_broker_exits_1_with_one_line(tmp_path: Path) -> None:
    pytest.importorskip("asynctasq_redis")
    proc = subprocess.run(
        [
            str(SCRIPT),
            "worker",
            "--driver",
            "redis",
            "-o",
            "url=redis://:pw@127.0.0.1:1/0",
            "-o",
            "retry_attempts=0",
            "--log-level",
            "critical",
        ],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot connect to redis (")
    assert "url=redis://:***@127.0.0.1:1/0" in proc.stderr and ":pw@" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_the_queues_command_sees_what_the_worker_left(backend: Backend, markers: Path) -> None:
    enqueue(backend.make(), [t.fail(str(markers), "x"), t.record(str(markers), "y").delay(300)])
    with worker(backend, "--burst") as proc:
        code, err, _ = finish(proc, 60)
    assert code == 0, err
    out = subprocess.run(
        [str(SCRIPT), "queues", *backend.args, "--json"],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    [row] = [r for r in json.loads(out.stdout) if r["queue"] == "cli-a"]
    assert (row["ready"], row["delayed"], row["in_flight"], row["dead"]) == (0, 1, 0, 1)
