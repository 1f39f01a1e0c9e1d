"""Tests that need a server of their own: command counts, lost scripts, an outage."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_redis import RedisDriver


def msg(queue: str, *, delay: float = 0.0) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, b"{}", delay=delay, visibility_timeout=30)


TOP_LEVEL = ("evalsha", "blmove", "rpush", "ping", "sadd", "script|load")
"""Commands a client sends (commandstats also counts the ones scripts run inside)."""


async def reset_stats(port: int) -> None:
    admin = Redis(port=port)
    try:
        await admin.config_resetstat()
    finally:
        await admin.aclose()


async def calls(port: int) -> dict[str, int]:
    """Calls per top-level command since `reset_stats`."""
    admin = Redis(port=port)
    try:
        stats = await admin.info("commandstats")
    finally:
        await admin.aclose()
    return {
        name: stats[f"cmdstat_{name}"]["calls"] for name in TOP_LEVEL if f"cmdstat_{name}" in stats
    }


async def test_idle_wait_blocks_instead_of_polling(private_driver: RedisDriver) -> None:
    port = int(private_driver.settings.url.rsplit(":", 1)[1])
    await private_driver.dequeue(["q"], limit=1, wait=0)  # connection open, scripts loaded
    await reset_stats(port)
    assert await private_driver.dequeue(["q"], limit=1, wait=2.0) == []
    # a look, one blocking wait, a last look at the deadline: not a poll loop
    assert await calls(port) == {"evalsha": 2, "blmove": 1}


async def test_multi_queue_waits_stand_between_idle_spells(private_driver: RedisDriver) -> None:
    port = int(private_driver.settings.url.rsplit(":", 1)[1])
    await private_driver.dequeue(["a", "b"], limit=1, wait=0)
    admin = Redis(port=port)
    try:
        await reset_stats(port)
        assert await private_driver.dequeue(["a", "b"], limit=1, wait=0.3) == []
        connections = (await admin.info("stats"))["total_connections_received"]
        for _ in range(2):
            assert await private_driver.dequeue(["a", "b"], limit=1, wait=0.3) == []
        # One BLMOVE per queue for all three idle spells: the waits that did not fire are
        # kept, not cancelled, so no spell costs a reconnect.
        assert (await admin.info("stats"))["total_connections_received"] == connections
        assert (await calls(port))["blmove"] == 2
        # and they still deliver: an enqueue to either queue ends the wait at once
        waiter = asyncio.create_task(private_driver.dequeue(["a", "b"], limit=1, wait=5.0))
        await asyncio.sleep(0.05)
        message = msg("b")
        started = time.monotonic()
        await private_driver.enqueue(message)
        got = await waiter
        assert [d.task_id for d in got] == [message.task_id]
        assert time.monotonic() - started < 2.0  # woken: the wait was for 5 s
        await private_driver.ack(got)
    finally:
        await admin.aclose()


async def test_hot_paths_are_one_round_trip(private_driver: RedisDriver) -> None:
    port = int(private_driver.settings.url.rsplit(":", 1)[1])
    await private_driver.enqueue(msg("q"))  # registers the queue, loads scripts
    await private_driver.ack(await private_driver.dequeue(["q"], limit=1, wait=0))
    await reset_stats(port)
    await private_driver.enqueue_many([msg("q") for _ in range(30)])
    await private_driver.enqueue(msg("q"))
    got = await private_driver.dequeue(["q"], limit=31, wait=0)
    await private_driver.ack(got)
    assert len(got) == 31
    # enqueue is a plain RPUSH (one per call, the batch one per queue); dequeue and ack
    # are one script call each
    assert await calls(port) == {"rpush": 2, "evalsha": 2}


async def test_lost_scripts_are_loaded_again(private_driver: RedisDriver) -> None:
    port = int(private_driver.settings.url.rsplit(":", 1)[1])
    await private_driver.connect()
    admin = Redis(port=port)
    try:
        await admin.script_flush()
        await private_driver.enqueue(msg("q"))
        await admin.script_flush()
        await private_driver.enqueue_many([msg("q"), msg("r", delay=0.001)])  # pipelined
        await asyncio.sleep(0.01)
        await admin.script_flush()
        got = await private_driver.dequeue(["q", "r"], limit=5, wait=0)
        assert len(got) == 3
        await admin.script_flush()
        await private_driver.ack(got)
        assert await private_driver.dequeue(["q", "r"], limit=5, wait=0) == []
    finally:
        await admin.aclose()


async def test_driver_reconnects_after_a_server_restart(
    private_redis: Any, private_driver: RedisDriver
) -> None:
    server = private_redis  # conftest.RedisProcess
    await private_driver.enqueue(msg("q"))
    assert len(await private_driver.dequeue(["q"], limit=1, wait=0)) == 1

    # A worker blocked in dequeue sees the outage as a ConnectionError.
    waiter = asyncio.create_task(private_driver.dequeue(["q"], limit=1, wait=10.0))
    await asyncio.sleep(0.1)
    server.stop()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(waiter, 10)
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await private_driver.enqueue(msg("q"))
    assert time.monotonic() - started < 5  # fails fast enough for the worker to back off

    server.start()
    # The same driver object works again: fresh connections, scripts loaded on NOSCRIPT.
    message = msg("q")
    await private_driver.enqueue(message)
    got = await private_driver.dequeue(["q"], limit=1, wait=1.0)
    assert [d.task_id for d in got] == [message.task_id]
    await private_driver.ack(got)


async def test_multi_queue_waits_survive_a_server_restart(
    private_redis: Any, private_driver: RedisDriver
) -> None:
    server = private_redis  # conftest.RedisProcess
    # standing waits on both queues, left armed by an idle spell
    assert await private_driver.dequeue(["a", "b"], limit=1, wait=0.2) == []
    waiter = asyncio.create_task(private_driver.dequeue(["a", "b"], limit=1, wait=10.0))
    await asyncio.sleep(0.1)
    server.stop()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(waiter, 10)
    server.start()
    # new standing waits replace the broken ones; an enqueue wakes the next wait at once
    waiter = asyncio.create_task(private_driver.dequeue(["a", "b"], limit=1, wait=10.0))
    await asyncio.sleep(0.3)
    message = msg("b")
    started = time.monotonic()
    await private_driver.enqueue(message)
    got = await asyncio.wait_for(waiter, 10)
    assert [d.task_id for d in got] == [message.task_id]
    assert time.monotonic() - started < 1.0
    await private_driver.ack(got)
