"""The pool recovers when the server drops the driver's connections (``KILL``, restarts)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import aiomysql
import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_mysql import MySQLDriver


def msg(queue: str = "q") -> OutgoingMessage:
    return OutgoingMessage(task_id=str(uuid.uuid4()), queue=queue, payload=b"{}")


async def driver_connection_ids(driver: MySQLDriver) -> list[int]:
    """Server-side ids of the driver's open connections, idle or in use.

    The test reaches into its own package's pool, and into aiomysql's, on purpose: nothing
    else tells which server connections are this driver's.
    """
    pool = driver._pool
    conns = [*pool._free, *pool._used]
    return [conn.thread_id() for conn in conns if not conn.closed]


async def kill(admin: Any, ids: list[int]) -> None:
    async with admin.cursor() as cursor:
        for thread_id in ids:
            try:
                await cursor.execute(f"KILL {int(thread_id)}")
            except aiomysql.OperationalError as exc:
                if exc.args[0] != 1094:  # already gone: the client has not noticed yet
                    raise


async def eventually(operation: Any, *, failures_allowed: int = 1) -> Any:
    """Run `operation`, tolerating up to `failures_allowed` connection errors first."""
    for _ in range(failures_allowed):
        try:
            return await operation()
        except (aiomysql.OperationalError, aiomysql.InterfaceError):
            await asyncio.sleep(0.05)
    return await operation()


async def test_killed_idle_connections_are_replaced(driver: MySQLDriver, admin: Any) -> None:
    await driver.enqueue_many([msg() for _ in range(3)])
    ids = await driver_connection_ids(driver)
    await kill(admin, ids)
    await asyncio.sleep(0.1)  # the server closes the sockets
    got = await eventually(lambda: driver.dequeue(["q"], limit=3, wait=0))
    assert len(got) == 3
    await driver.ack(got)
    await driver.enqueue(msg())
    assert len(await driver.dequeue(["q"], limit=1, wait=0)) == 1
    assert set(await driver_connection_ids(driver)).isdisjoint(ids)


async def test_a_killed_connection_in_use_raises_then_the_driver_recovers(
    driver: MySQLDriver, admin: Any
) -> None:
    waiter = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=1.5))
    await asyncio.sleep(0.3)
    # Kill repeatedly while the consumer polls, as a server restart would.
    for _ in range(3):
        await kill(admin, await driver_connection_ids(driver))
        await asyncio.sleep(0.05)
    try:
        result = await waiter
    except (aiomysql.OperationalError, aiomysql.InterfaceError):
        result = []  # an operation may raise; the worker backs off and calls again
    assert result == []
    sent = msg()
    await eventually(lambda: driver.enqueue(sent))
    got = await eventually(lambda: driver.dequeue(["q"], limit=1, wait=1.0))
    assert [d.task_id for d in got] == [sent.task_id]


@pytest.mark.parametrize("operation", ["enqueue", "stats"])
async def test_every_operation_recovers_after_a_kill(
    driver: MySQLDriver, admin: Any, operation: str
) -> None:
    await kill(admin, await driver_connection_ids(driver))
    await asyncio.sleep(0.1)
    if operation == "enqueue":
        await eventually(lambda: driver.enqueue(msg()))
    [stats] = await eventually(lambda: driver.stats(["q"]))
    assert stats.ready == (1 if operation == "enqueue" else 0)


_ran: set[int] = set()


async def _remember(n: int) -> None:
    """Task body for the worker test: note that `n` ran."""
    _ran.add(n)


async def test_core_worker_runs_every_task_through_repeated_kills(
    make_driver: Callable[..., MySQLDriver], admin: Any
) -> None:
    from asynctasq import dispatch_many, task
    from asynctasq.worker import Worker

    _ran.clear()
    driver = make_driver(max_pool_size=4)
    # A dequeue killed after its COMMIT leaves leases nobody holds: keep them short.
    remember = task(queue="q", driver=driver, max_attempts=20, visibility_timeout=2)(_remember)
    worker = Worker(
        driver=driver,
        queues=["q"],
        concurrency=4,
        poll_wait=0.5,
        install_signal_handlers=False,
    )
    running = asyncio.create_task(worker.run())
    try:
        for batch in range(5):
            numbers = range(batch * 20, batch * 20 + 20)
            await eventually(lambda ns=numbers: dispatch_many(remember(n=n) for n in ns))
            await asyncio.sleep(0.1)
            await kill(admin, await driver_connection_ids(driver))
        async with asyncio.timeout(60):
            while len(_ran) < 100:
                await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await running
    assert _ran == set(range(100))
