"""Lifecycle edges: cancelled dequeues, reuse across event loops, close and reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import uuid
from collections.abc import Callable

import pytest

from asynctasq.drivers.base import Delivery, OutgoingMessage
from asynctasq_mysql import MySQLDriver


def msg(queue: str = "q") -> OutgoingMessage:
    return OutgoingMessage(task_id=str(uuid.uuid4()), queue=queue, payload=b"{}")


async def test_cancelled_dequeues_leave_no_locks_and_lose_nothing(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver(max_pool_size=4)
    await driver.enqueue_many([msg() for _ in range(40)])
    taken: list[Delivery] = []
    rng = random.Random(7)
    for _ in range(40):
        call = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=0))
        await asyncio.sleep(rng.uniform(0, 0.004))
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            taken += await call
    # A cancelled call's statement ran to its end and what it took was given back: closing
    # waits for those. Every row not returned to a caller is ready at once, and none may
    # stay locked by a half-finished transaction (another consumer sees them all).
    await driver.close()
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (40 - len(taken), len(taken))
    other = make_driver()
    rest = await asyncio.wait_for(other.dequeue(["q"], limit=40, wait=0), 10)
    assert len(rest) == stats.ready
    assert {d.task_id for d in rest}.isdisjoint(d.task_id for d in taken)
    assert {d.attempts for d in rest} == {0}  # given back uncounted
    await other.ack(rest)
    await driver.ack(taken)
    assert len(await driver.dequeue(["q"], limit=40, wait=0)) == 0


async def test_close_then_use_again_reconnects(driver: MySQLDriver) -> None:
    await driver.enqueue(msg())
    await driver.close()
    await driver.close()  # idempotent
    assert not driver.connected
    assert len(await driver.dequeue(["q"], limit=1, wait=0)) == 1
    assert driver.connected


def test_one_driver_across_two_event_loops(make_driver: Callable[..., MySQLDriver]) -> None:
    driver = make_driver()

    async def first_loop() -> None:
        try:
            await driver.enqueue(msg())
        finally:
            await driver.close()

    async def second_loop() -> int:
        try:
            return len(await driver.dequeue(["q"], limit=5, wait=0))
        finally:
            await driver.close()

    asyncio.run(first_loop())
    assert asyncio.run(second_loop()) == 1


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_pool_left_open_on_a_finished_loop_is_replaced(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver()
    asyncio.run(driver.enqueue(msg()))  # never closed: its loop ends under it

    async def second_loop() -> int:
        try:
            return len(await driver.dequeue(["q"], limit=5, wait=0))
        finally:
            await driver.close()

    assert asyncio.run(second_loop()) == 1
    gc.collect()  # the abandoned sockets warn now, under this test's filters
