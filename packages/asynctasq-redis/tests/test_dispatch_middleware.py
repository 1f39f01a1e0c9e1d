"""Dispatch-side middleware on a real Redis: a failing after_enqueue hook never makes a queued
task look unqueued (the caller's retry would queue it twice)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from asynctasq import Middleware, dispatch_many, task
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.middleware import add_middleware, remove_middleware
from asynctasq_redis import RedisDriver


class BrokenAfter(Middleware):
    def __init__(self) -> None:
        self.calls = 0

    def after_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        self.calls += 1
        raise ConnectionError("tracing collector unreachable")


@pytest.fixture
def broken() -> Iterator[BrokenAfter]:
    middleware = BrokenAfter()
    add_middleware(middleware)
    yield middleware
    remove_middleware(middleware)


async def test_dispatch_and_dispatch_many_succeed_when_after_enqueue_raises(
    redis_driver: RedisDriver, broken: BrokenAfter
) -> None:
    @task(queue="mw", driver=redis_driver)
    async def ping(i: int) -> None: ...

    one = await ping(0).dispatch()
    many = await dispatch_many([ping(1), ping(2)])

    assert broken.calls == 3
    deliveries = await redis_driver.dequeue(["mw"], limit=10, wait=0)
    assert [d.task_id for d in deliveries] == [one, *many]  # each exactly once
    await redis_driver.ack(deliveries)
