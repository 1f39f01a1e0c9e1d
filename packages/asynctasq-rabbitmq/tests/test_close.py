"""Closing a driver leaves no task of its connection pending (a loop ending right after
would report it destroyed while pending)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_rabbitmq import RabbitMQDriver


async def test_close_leaves_nothing_pending(make_driver: Callable[..., RabbitMQDriver]) -> None:
    current = asyncio.current_task()
    left: list[Any] = []
    for _ in range(20):
        before = set(asyncio.all_tasks())
        driver = make_driver()
        await driver.connect()
        await driver.enqueue_many([OutgoingMessage(str(uuid.uuid4()), "q", b"x")])
        await driver.close()
        # Right after close(): what a loop ending now would find.
        left += [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert left == []


async def test_a_cancelled_connect_leaves_no_connection_behind(
    make_driver: Callable[..., RabbitMQDriver],
) -> None:
    """A connect cancelled at any point of the handshake (a worker stopped while the broker
    was slow) closes what it had opened: no reader, writer or reconnection task lives on."""
    current = asyncio.current_task()
    left: list[Any] = []
    cancelled_mid_way = 0
    for step in range(30):
        before = set(asyncio.all_tasks())
        driver = make_driver()
        connecting = asyncio.create_task(driver.connect())
        await asyncio.sleep(step * 0.0005)
        if not connecting.done():
            cancelled_mid_way += 1
            connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await driver.close()
        await asyncio.sleep(0.05)  # what a leaked reconnection would start by now
        left += [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert cancelled_mid_way > 0
    assert left == []
