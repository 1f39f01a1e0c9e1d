"""The probes of a real worker process on a private redis-server: ready while it fetches,
not ready (but alive) while the broker is down, ready again once it is back; the health
file says the same and is removed on exit; a taken port is a usage error."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prom_testing import free_port, get, scrape, value, wait_until, worker

from asynctasq.worker.health import HEALTH_FILE_INTERVAL

pytestmark = pytest.mark.slow
REDIS_SERVER = shutil.which("redis-server")


@contextmanager
def redis_server(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A throw-away redis-server on `port` (no persistence)."""
    assert REDIS_SERVER is not None
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no"]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_ready_follows_the_broker_and_alive_stays(tmp_path: Path) -> None:
    redis_port, port = free_port(), free_port()
    log, redis_log, health = tmp_path / "worker.log", tmp_path / "redis.log", tmp_path / "health"
    args = ["--driver", "redis", "-o", f"url=redis://127.0.0.1:{redis_port}/0"]
    args += ["--metrics-port", str(port), "--health-file", str(health)]
    with redis_server(redis_port, redis_log) as broker:
        wait_until(lambda: get_ping(redis_port), 30, "redis-server", redis_log)
        with worker(log, *args) as proc:
            wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), 60, "ready", log, proc)
            wait_until(lambda: read(health) == "ready", 30, "the file says ready", log, proc)
            broker.kill()
            broker.wait(10)
            _, why = wait_until(
                lambda: (r := get(port, "/readyz"))[0] == 503 and r, 60, "not ready", log, proc
            )
            assert why.startswith("fetching fails: ")
            assert get(port, "/healthz") == (200, "ok\n")  # its event loop still answers
            wait_until(
                lambda: read(health).startswith("not ready: fetching fails"),
                3 * HEALTH_FILE_INTERVAL,
                "the file says not ready",
                log,
                proc,
            )
            wait_until(
                lambda: (
                    value(scrape(port), "asynctasq_broker_errors_total", operation="dequeue") > 0
                ),
                30,
                "broker errors counted",
                log,
                proc,
            )
            with redis_server(redis_port, redis_log):
                wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), 60, "ready again", log)
                wait_until(lambda: read(health) == "ready", 30, "the file says ready", log)
        assert proc.returncode == 0, log.read_text()
        assert not health.exists()  # removed on exit


def test_a_taken_port_is_a_usage_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "worker.log"
        args = ["--driver", "memory", "--metrics-port", str(port)]
        with worker(log, *args) as proc:
            assert proc.wait(60) == 2
    assert f"--metrics-port: cannot serve on 127.0.0.1:{port}" in log.read_text()


def get_ping(port: int) -> bool:
    import socket

    with socket.create_connection(("127.0.0.1", port), 1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


def read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
