"""Core's ``dispatch(connection=conn)`` queues inside the caller's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from asynctasq import init, task
from asynctasq.drivers.connections import close_drivers
from asynctasq_postgres import PostgresDriver


@task(queue="tx")
async def send_receipt(order_id: int) -> None:
    """A task dispatched together with an order row."""


@pytest.fixture
async def configured(
    make_driver: Callable[..., PostgresDriver], dsn: str
) -> AsyncIterator[PostgresDriver]:
    driver = make_driver()
    await driver.init_schema()
    settings = {"dsn": dsn, "schema": driver.table_names.schema, "max_pool_size": 2}
    init({"driver": "postgres", "postgres": settings})
    try:
        yield driver
    finally:
        await close_drivers()
        init()


async def test_dispatch_with_connection_commits_or_rolls_back_with_the_caller(
    configured: PostgresDriver, dsn: str
) -> None:
    driver = configured
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TEMP TABLE orders (id int)")

        async def order_then_fail() -> None:
            async with connection.transaction():
                await connection.execute("INSERT INTO orders VALUES (1)")
                await send_receipt(1).dispatch(connection=connection)
                raise RuntimeError("payment declined")

        with pytest.raises(RuntimeError, match="declined"):
            await order_then_fail()
        assert await driver.dequeue(["tx"], limit=5, wait=0) == []

        async with connection.transaction():
            await connection.execute("INSERT INTO orders VALUES (2)")
            task_id = await send_receipt(2).dispatch(connection=connection)
        [delivery] = await driver.dequeue(["tx"], limit=5, wait=1.0)
        assert delivery.task_id == task_id
        assert await connection.fetchval("SELECT count(*) FROM orders") == 1
    finally:
        await connection.close()
