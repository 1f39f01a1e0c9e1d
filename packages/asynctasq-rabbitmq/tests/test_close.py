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
