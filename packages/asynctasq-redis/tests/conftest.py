"""Fixtures: the real local Redis (env URL, loopback default), private servers, a cluster.

Unreachable servers skip the tests with the reason, except under CI (``CI`` set), where they
fail: a green CI run must have talked to Redis.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import RedisError
from tests.server_choice import server_url

from asynctasq_redis import RedisDriver

# The variable, else the local server, else a container when Docker answers (issue 19).
REDIS_URL = server_url("redis")

# Private servers take random free ports from this range: below Linux's ephemeral range
# (32768+, where outgoing connections take theirs), cluster bus ports (+10000) included, so
# two copies of the suite (or xdist workers) never need the same port.
PORT_RANGE = (15000, 22000)
CLUSTER_BUS_OFFSET = 10000
START_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """The port chosen for a private server was taken by another process first."""


def unavailable(reason: str) -> None:
    """Skip on a developer's machine, fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int, *, cluster_bus: bool = False) -> list[int]:
    """`count` distinct loopback ports nothing listens on now (with their bus port free
    too, for cluster nodes). Another process may still take one before the server binds
    it: callers retry on `PortTaken`."""
    pick = random.SystemRandom()
    chosen: list[int] = []
    while len(chosen) < count:
        port = pick.randrange(*PORT_RANGE)
        if port in chosen or not _bindable(port):
            continue
        if cluster_bus and not _bindable(port + CLUSTER_BUS_OFFSET):
            continue
        chosen.append(port)
    return chosen


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


def server_pid(port: int) -> int:
    with SyncRedis(port=port, socket_connect_timeout=1) as client:
        return int(client.info("server")["process_id"])


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
        """Start the server; `PortTaken` if another process holds (or wins) the port."""
        if port_open(self.port):
            raise PortTaken(f"port {self.port} is already taken")
        self.workdir.mkdir(parents=True, exist_ok=True)
        proc = self.proc = subprocess.Popen(
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

        def ours() -> bool:
            if proc.poll() is not None:  # it could not bind: someone else has the port
                raise PortTaken(f"redis-server on {self.port} exited ({proc.returncode})")
            # A server answering there may be another run's, started a moment earlier.
            return server_pid(self.port) == proc.pid

        try:
            wait_for(ours, f"redis-server on {self.port}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            ours = self.proc.poll() is None
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
            if ours:
                wait_for(lambda: not port_open(self.port), f"port {self.port} to close")


def start_private(workdir: Path, *extra: str) -> RedisProcess:
    """A started `RedisProcess` on a free port (another port is tried if one is taken)."""
    for attempt in range(START_ATTEMPTS):
        [port] = free_ports(1)
        server = RedisProcess(port, workdir / str(port), *extra)
        try:
            server.start()
        except PortTaken:
            if attempt == START_ATTEMPTS - 1:
                raise
            continue
        return server
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def pick_ports() -> Callable[..., list[int]]:
    """`free_ports`, for test modules that start servers of their own (TLS)."""
    return free_ports


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
        ports: tuple[int, ...] = _cluster_ports[url]
        url = "redis://127.0.0.1:{port}"
    else:
        ports = (0,)
    for port in ports:
        with SyncRedis.from_url(url.format(port=port)) as client:
            for key in list(client.scan_iter(match=f"{{{prefix}*", count=1000)):
                client.delete(key)


_cluster_ports: dict[str, tuple[int, ...]] = {}
"""The node ports of each cluster this process started, by its URL."""


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


def _start_cluster(base: Path, cli: str) -> list[RedisProcess]:
    """Three primaries on free ports (and free bus ports), joined into one cluster."""
    ports = free_ports(3, cluster_bus=True)
    nodes: list[RedisProcess] = []
    try:
        for port in ports:
            conf = str(base / str(port) / "nodes.conf")
            options = ["--cluster-enabled", "yes", "--cluster-config-file", conf]
            node = RedisProcess(port, base / str(port), *options, "--cluster-node-timeout", "2000")
            nodes.append(node)
            node.start()
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        wait_for(lambda: all(map(cluster_ok, ports)), "cluster_state:ok", within=20)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-primary Redis Cluster on free loopback ports, started for this session (once per
    xdist worker that needs it) and killed after."""
    redis_server_binary()
    cli = shutil.which("redis-cli")
    if cli is None:
        unavailable("redis-cli is not installed")
    assert cli is not None
    base = tmp_path_factory.mktemp("redis-cluster")
    for attempt in range(START_ATTEMPTS):
        try:
            nodes = _start_cluster(base / str(attempt), cli)
            break
        except PortTaken:
            if attempt == START_ATTEMPTS - 1:
                raise
    url = f"redis+cluster://127.0.0.1:{nodes[0].port}"
    _cluster_ports[url] = tuple(node.port for node in nodes)
    try:
        yield url
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
    """A private redis-server on a free port that the test may kill and restart."""
    server = start_private(tmp_path / "private-redis")
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
