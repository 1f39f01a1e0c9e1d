"""A server that accepts connections and never answers (a hung Redis, a proxy whose backend
is gone): a call fails after about one `socket_timeout`, not after retries of retries.

The retries (`retry_attempts`) are for broken connections, which a fresh connection
recovers at once. A timeout is not retried: redis-py retries the connect handshake inside
each retry of the command, so a silent server cost (retries + 1)^2 socket timeouts, 80 s
with the defaults, in a web request's dispatch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_redis import RedisDriver

TIMEOUT = 0.4


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never answered, never closed

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in held:
        writer.close()


async def test_a_silent_server_fails_a_call_after_one_timeout(silent_port: int) -> None:
    driver = RedisDriver(
        url=f"redis://127.0.0.1:{silent_port}/0", socket_timeout=TIMEOUT, retry_attempts=3
    )
    try:
        started = time.monotonic()
        with pytest.raises((RedisTimeoutError, RedisConnectionError)):
            await driver.enqueue(
                OutgoingMessage("00000000-0000-4000-8000-000000000000", "q", b"{}")
            )
        elapsed = time.monotonic() - started
    finally:
        await driver.close()
    # one timeout, and a little; retried timeouts took 16 (4 x 4) here
    assert elapsed < 5 * TIMEOUT, elapsed
