"""Fixtures: a reachable RabbitMQ and drivers isolated per test (own exchange and prefix).

The broker URL comes from `ASYNCTASQ_TEST_RABBITMQ_URL` (loopback default). Without a broker
the tests skip, or fail when `CI` is set. Every test's queues and exchanges are deleted after.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.server_choice import server_url

from asynctasq_rabbitmq import RabbitMQDriver

# The variable, else the local server, else a container when Docker answers (issue 19).
RABBITMQ_URL = server_url("rabbitmq")

DriverFactory = Callable[..., RabbitMQDriver]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The broker URL, or skip (fail under CI) when nothing listens there."""
    if not _reachable(RABBITMQ_URL):
        reason = f"RabbitMQ not reachable at {RABBITMQ_URL} (set ASYNCTASQ_TEST_RABBITMQ_URL)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return RABBITMQ_URL


@pytest.fixture
def delivered_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each delivery reached the driver's consumer: the repr of the running task's
    coroutine (set up before a driver subscribes, which binds the callback)."""
    from asynctasq_rabbitmq.consumer import Consumer

    ran_in: list[str] = []
    plain = Consumer._deliver

    def spy(self: Consumer, *args: Any) -> None:
        task = asyncio.current_task()
        ran_in.append(repr(task.get_coro()) if task is not None else "")
        plain(self, *args)

    monkeypatch.setattr(Consumer, "_deliver", spy)
    return ran_in


@pytest.fixture
async def make_driver(rabbitmq_url: str) -> AsyncIterator[DriverFactory]:
    """Build drivers sharing one fresh namespace; all closed and their topology deleted after."""
    namespace = uuid.uuid4().hex[:10]
    settings: dict[str, Any] = {
        "url": rabbitmq_url,
        "exchange_name": f"asynctasq-test-{namespace}",
        "queue_prefix": f"t{namespace}.",
    }
    created: list[RabbitMQDriver] = []

    def factory(**overrides: Any) -> RabbitMQDriver:
        driver = RabbitMQDriver(**{**settings, **overrides})
        created.append(driver)
        return driver

    yield factory
    for driver in created:
        await driver.close()
    cleaner = RabbitMQDriver(**settings)
    try:
        await cleaner.delete_topology()
    finally:
        await cleaner.close()


class TcpProxy:
    """A loopback TCP proxy to the broker that a test can cut and restore (a broker outage
    seen from the client, without touching the shared server)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (again, on the same port once it has one)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    async def cut(self) -> None:
        """Stop listening and abort every proxied connection, as a dead broker would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def url(self, base: str) -> str:
        parts = urlsplit(base)
        return parts._replace(
            netloc=f"{parts.username}:{parts.password}@127.0.0.1:{self.port}"
        ).geturl()


@pytest.fixture
async def tcp_proxy(rabbitmq_url: str) -> AsyncIterator[TcpProxy]:
    """A started `TcpProxy` in front of the test broker."""
    parts = urlsplit(rabbitmq_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.cut()
