"""Helpers for the metrics tests (on sys.path through conftest; not collected)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from asynctasq.core.dispatch import prepare
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import Driver

TASKS_DIR = Path(__file__).resolve().parent
SCRIPT = Path(sys.executable).with_name("asynctasq")
REDIS_URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
QUEUE = "prom"


def redis_args(prefix: str) -> list[str]:
    """The worker's options for the test Redis with key prefix `prefix`."""
    return ["--driver", "redis", "-o", f"url={REDIS_URL}", "-o", f"prefix={prefix}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_redis(url: str = REDIS_URL) -> None:
    """Skip (fail under CI) when Redis does not answer at `url`."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return
    except OSError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {url} (CI is set)")
        pytest.skip(f"Redis is not reachable at {url}")


def enqueue(driver: Driver, tasks: Sequence[BaseTask[Any]]) -> list[str]:
    """Queue `tasks` on `driver` (outside any event loop); return their ids."""
    messages = [prepare(t) for t in tasks]

    async def send() -> None:
        await driver.connect()
        try:
            await driver.enqueue_many(messages)
        finally:
            await driver.close()

    asyncio.run(send())
    return [m.task_id for m in messages]


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:`port``path`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    status, body = get(port, "/metrics")
    assert status == 200, body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def env() -> dict[str, str]:
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ASYNCTASQ_") or k.startswith("ASYNCTASQ_TEST_")
    }
    out.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out["PYTHONUNBUFFERED"] = "1"
    return out


@contextmanager
def worker(
    log: Path, *args: str, extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``asynctasq worker`` on the test tasks, its output in `log`; stopped afterwards."""
    command = [
        str(SCRIPT),
        "worker",
        "--import",
        "prom_tasks",
        "--allowed-root",
        str(TASKS_DIR),
        "--queues",
        QUEUE,
        "--no-live",
        *args,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**env(), **(extra_env or {})}
        )
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_until(
    check: Callable[[], Any], within: float, what: str, log: Path, proc: Any = None
) -> Any:
    """Poll `check` until it returns something truthy; fail with the log after `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {what}\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
