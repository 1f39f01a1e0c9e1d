"""Fixtures: the real local Redis (env URL, loopback default), private servers, a cluster.

Unreachable servers skip the tests with the reason, except under CI (``CI`` set), where they
fail: a green CI run must have talked to Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from asynctasq_redis import RedisDriver

REDIS_URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CLUSTER_PORTS = tuple(
    int(p) for p in os.environ.get("ASYNCTASQ_TEST_CLUSTER_PORTS", "7101,7102,7103").split(",")
)
PRIVATE_PORT = int(os.environ.get("ASYNCTASQ_TEST_PRIVATE_REDIS_PORT", "7200"))


def unavailable(reason: str) -> None:
    """Skip on a developer's machine, fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: object, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def ping(port: int) -> bool:
    with SyncRedis(port=port, socket_connect_timeout=1) as client:
        return bool(client.ping())


def cluster_ok(port: int) -> bool:
    with SyncRedis(port=port, socket_connect_timeout=1) as client:
        return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
    return binary


class RedisProcess:
    """A private ``redis-server`` on a loopback port that a test may stop and start."""

    def __init__(self, port: int, workdir: Path, *extra: str) -> None:
        self.port = port
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is already taken; set another in the env")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--logfile", str(self.workdir / "redis.log"),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: ping(self.port), f"redis-server on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        wait_for(lambda: not port_open(self.port), f"port {self.port} to close")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test server's URL; skips (or fails under CI) when it is unreachable."""
    try:
        with SyncRedis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is unreachable ({exc}); start it or set "
                    "ASYNCTASQ_TEST_REDIS_URL")  # fmt: skip
    return REDIS_URL


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix` (on each cluster primary for a cluster URL)."""
    if "+cluster://" in url:
        ports = CLUSTER_PORTS
        url = "redis://127.0.0.1:{port}"
    else:
        ports = (0,)
    for port in ports:
        with SyncRedis.from_url(url.format(port=port)) as client:
            for key in list(client.scan_iter(match=f"{{{prefix}*", count=1000)):
                client.delete(key)


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_driver(redis_url: str, prefix: str) -> AsyncIterator[RedisDriver]:
    """A connected driver on the shared server with its own prefix, keys removed after."""
    driver = RedisDriver(url=redis_url, prefix=prefix)
    await driver.connect()
    yield driver
    await driver.close()
    delete_prefix(redis_url, prefix)


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-primary Redis Cluster on loopback, started for this session and killed after."""
    redis_server_binary()
    cli = shutil.which("redis-cli")
    if cli is None:
        unavailable("redis-cli is not installed")
    assert cli is not None
    base = tmp_path_factory.mktemp("redis-cluster")

    def make_node(port: int) -> RedisProcess:
        conf = str(base / str(port) / "nodes.conf")
        options = ["--cluster-enabled", "yes", "--cluster-config-file", conf]
        return RedisProcess(port, base / str(port), *options, "--cluster-node-timeout", "2000")

    nodes = [make_node(port) for port in CLUSTER_PORTS]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in CLUSTER_PORTS),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip

        wait_for(lambda: all(map(cluster_ok, CLUSTER_PORTS)), "cluster_state:ok", within=20)
        yield f"redis+cluster://127.0.0.1:{CLUSTER_PORTS[0]}"
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
async def cluster_driver(cluster_url: str, prefix: str) -> AsyncIterator[RedisDriver]:
    """A connected driver on the test cluster with its own prefix."""
    driver = RedisDriver(url=cluster_url, prefix=prefix)
    await driver.connect()
    yield driver
    await driver.close()
    delete_prefix(cluster_url, prefix)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server (port 7200 by default) that the test may kill and restart."""
    server = RedisProcess(PRIVATE_PORT, tmp_path / "private-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def private_driver(private_redis: RedisProcess, prefix: str) -> AsyncIterator[RedisDriver]:
    """A driver on the private server, with short health checks for restart tests."""
    driver = RedisDriver(url=private_redis.url, prefix=prefix, health_check_interval=1.0)
    yield driver
    await driver.close()
