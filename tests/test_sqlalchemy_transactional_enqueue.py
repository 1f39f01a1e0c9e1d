"""``dispatch(connection=...)`` with SQLAlchemy's async session and connection on real
PostgreSQL: the task exists if and only if the caller's transaction commits."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("sqlalchemy")
asyncpg = pytest.importorskip("asyncpg")

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import asynctasq  # noqa: E402
from asynctasq import dispatch_many, init, task  # noqa: E402
from asynctasq.drivers.base import EventLog, OutgoingMessage, TransactionalEnqueue  # noqa: E402
from asynctasq.drivers.connections import close_drivers, get_driver  # noqa: E402
from asynctasq.lifecycle import events  # noqa: E402
from asynctasq.lifecycle.dispatching import first_writes  # noqa: E402

DSN = os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SA_URL = DSN.replace("postgresql://", "postgresql+asyncpg://", 1)


@task(queue="sa-tx")
async def send_receipt(order_id: int) -> None:
    """Dispatched together with an order row."""


@task(queue="sa-tx", track=True)
async def tracked_receipt(order_id: int) -> None:
    """`send_receipt` with a status record."""


def _reachable() -> bool:
    parts = urlsplit(DSN)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 1):
            return True
    except OSError:
        return False


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    if not _reachable():
        pytest.skip(f"postgres unreachable at {DSN}")
    name = f"atq_satx_{uuid.uuid4().hex[:10]}"
    init({"driver": "postgres", "postgres": {"dsn": DSN, "schema": name, "auto_migrate": True}})
    admin = await asyncpg.connect(DSN)
    await admin.execute(f'CREATE SCHEMA "{name}"; CREATE TABLE "{name}".orders (id int)')
    try:
        yield name
    finally:
        await close_drivers()
        init()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await admin.close()


@pytest.fixture
async def engine(schema: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(SA_URL)
    yield created
    await created.dispose()


async def queued() -> list[str]:
    driver = await get_driver()
    deliveries = await driver.dequeue(["sa-tx"], limit=100, wait=0)
    await driver.release(deliveries)
    return sorted(d.task_id for d in deliveries)


async def orders(schema: str) -> int:
    conn = await asyncpg.connect(DSN)
    try:
        count: int = await conn.fetchval(f'SELECT count(*) FROM "{schema}".orders')
        return count
    finally:
        await conn.close()


async def test_a_session_that_commits_queues_the_task(engine: AsyncEngine, schema: str) -> None:
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(text(f'INSERT INTO "{schema}".orders VALUES (1)'))
        task_id = await send_receipt(1).dispatch(connection=session)
        assert await queued() == []  # not visible before the commit
    assert await queued() == [task_id]
    assert await orders(schema) == 1


async def test_a_session_that_rolls_back_leaves_no_task(engine: AsyncEngine, schema: str) -> None:
    async def order_then_fail() -> None:
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(text(f'INSERT INTO "{schema}".orders VALUES (1)'))
            await send_receipt(1).dispatch(connection=session)
            raise RuntimeError("payment declined")

    with pytest.raises(RuntimeError, match="declined"):
        await order_then_fail()
    assert await queued() == []
    assert await orders(schema) == 0


async def test_the_task_joins_a_transaction_nothing_was_sent_in_yet(engine: AsyncEngine) -> None:
    """SQLAlchemy sends BEGIN with the first statement: a dispatch that comes first must
    still be inside the transaction, or a rollback would leave the task behind."""
    async with AsyncSession(engine) as session:
        await send_receipt(1).dispatch(connection=session)
        await session.rollback()
    assert await queued() == []
    async with AsyncSession(engine) as session:
        task_id = await send_receipt(2).dispatch(connection=session)
        await session.commit()
    assert await queued() == [task_id]


@pytest.mark.parametrize("commit", [True, False])
async def test_an_async_connection_commits_or_rolls_back_with_the_task(
    engine: AsyncEngine, schema: str, commit: bool
) -> None:
    async with AsyncSession(engine) as session:
        connection = await session.connection()
        await connection.execute(text(f'INSERT INTO "{schema}".orders VALUES (1)'))
        ids = await dispatch_many([send_receipt(1), send_receipt(2)], connection=connection)
        await (session.commit() if commit else session.rollback())
    assert await queued() == (sorted(ids) if commit else [])
    assert await orders(schema) == (1 if commit else 0)


async def test_an_engine_connection_in_commit_as_you_go_style(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        task_id = await send_receipt(1).dispatch(connection=connection)
        await connection.rollback()
        assert await queued() == []
        task_id = await send_receipt(2).dispatch(connection=connection)
        await connection.commit()
    assert await queued() == [task_id]


async def test_a_sync_session_is_refused_naming_what_to_pass(schema: str) -> None:
    sync_engine = create_engine("sqlite://")
    try:
        with Session(sync_engine) as session:
            call = send_receipt(1)
            with pytest.raises(TypeError, match=r"sync SQLAlchemy Session.*AsyncSession") as e:
                await call.dispatch(connection=session)
            assert "dispatch_after_commit" in str(e.value)
            with pytest.raises(TypeError, match="sync SQLAlchemy Connection"):
                await send_receipt(2).dispatch(connection=session.connection())
    finally:
        sync_engine.dispose()
    assert await queued() == []


@pytest.mark.parametrize("wrong", [object(), "postgresql://", None.__class__])
async def test_anything_else_is_refused_naming_what_to_pass(schema: str, wrong: Any) -> None:
    with pytest.raises(TypeError, match="pass an asyncpg connection, or a SQLAlchemy AsyncSession"):
        await send_receipt(1).dispatch(connection=wrong)
    assert await queued() == []


async def test_an_engine_on_another_driver_is_refused(schema: str) -> None:
    pytest.importorskip("psycopg")
    other = create_async_engine(DSN.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        async with AsyncSession(other) as session:
            with pytest.raises(TypeError, match=r"not asyncpg: .*postgresql\+asyncpg://"):
                await send_receipt(1).dispatch(connection=session)
    finally:
        await other.dispose()
    assert await queued() == []


async def test_a_session_on_another_database_is_refused(schema: str) -> None:
    """Queue tables exist there too (migrated with the same settings), so an insert would
    succeed, and the task would wait where no worker looks."""
    from asynctasq_postgres import PostgresDriver

    database = f"atq_other_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    other_dsn = DSN.rsplit("/", 1)[0] + f"/{database}"
    other = create_async_engine(other_dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    there = PostgresDriver(other_dsn, schema=schema, auto_migrate=True)
    try:
        await there.init_schema()
        refused = rf"database '{database}', but the postgres driver queues in database '\w+'"
        async with AsyncSession(other) as session:
            with pytest.raises(ValueError, match=refused):
                async with session.begin():
                    await send_receipt(1).dispatch(connection=session)
        assert await there.dequeue(["sa-tx"], limit=10, wait=0) == []
    finally:
        await there.close()
        await other.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    assert await queued() == []


async def test_a_raw_connection_to_the_drivers_database_is_asked_once(schema: str) -> None:
    connection = await asyncpg.connect(DSN)
    try:
        for n in range(3):
            async with connection.transaction():
                await send_receipt(n).dispatch(connection=connection)
        driver = await get_driver()
        assert len(driver._same_database._seen) == 1  # type: ignore[attr-defined]
    finally:
        await connection.close()
    assert len(await queued()) == 3


@pytest.mark.parametrize("many", [False, True])
async def test_a_tracked_tasks_record_commits_or_rolls_back_with_it(
    engine: AsyncEngine, schema: str, many: bool
) -> None:
    """Its first record is written in the caller's transaction: a rollback leaves no record
    claiming a task that never existed, and no task-enqueued event is published for it."""
    init(
        {
            "driver": "postgres",
            "postgres": {"dsn": DSN, "schema": schema, "auto_migrate": True},
            "events": {"enabled": True},
        }
    )

    async def queue(session: AsyncSession, order_id: int) -> str:
        if many:
            [task_id] = await dispatch_many([tracked_receipt(order_id)], connection=session)
            return str(task_id)
        return str(await tracked_receipt(order_id).dispatch(connection=session))

    async with AsyncSession(engine) as session:
        rolled_back = await queue(session, 1)
        await session.rollback()
    assert await asynctasq.status(rolled_back) is None
    async with AsyncSession(engine) as session:
        committed = await queue(session, 2)
        assert await asynctasq.status(committed) is None  # not visible before the commit
        await session.commit()
    status = await asynctasq.status(committed)
    assert status is not None and status.state == "queued"
    assert await queued() == [committed]
    outside = await tracked_receipt(3).dispatch()  # no transaction: its event is published
    driver = await get_driver()
    assert isinstance(driver, EventLog)
    entries, _ = await driver.read_log(events.LOG, None, wait=0)
    enqueued = [events.Event.decode(e) for e in entries]
    assert [e.task_id for e in enqueued if e and e.type == "task-enqueued"] == [str(outside)]


async def test_without_a_transaction_the_record_and_the_message_go_together(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection in autocommit mode: the status record must not be committed on its own
    # when the message's insert then fails.
    import asynctasq_postgres.driver as postgres_driver

    message = OutgoingMessage(str(uuid.uuid4()), "sa-tx", b"{}")
    statuses = first_writes([(message, "shop:send_receipt", 60.0)])
    monkeypatch.setattr(
        postgres_driver, "insert", lambda sql, messages: ("INSERT INTO no_such VALUES (1)", [])
    )
    driver = await get_driver()
    assert isinstance(driver, TransactionalEnqueue)
    conn = await asyncpg.connect(DSN)
    try:
        with pytest.raises(Exception, match='relation "no_such" does not exist'):
            await driver.enqueue_with_connection(conn, [message], statuses=statuses)
        assert not conn.is_in_transaction()
    finally:
        await conn.close()
    assert await asynctasq.status(message.task_id) is None


async def test_a_connection_with_other_session_settings_is_the_same_database(
    schema: str,
) -> None:
    """A time zone or date style of its own (per role, per connection) changes how the
    server prints times, not which database the connection is on."""
    connection = await asyncpg.connect(
        DSN, server_settings={"timezone": "Asia/Tokyo", "DateStyle": "SQL, DMY"}
    )
    try:
        async with connection.transaction():
            task_id = await send_receipt(7).dispatch(connection=connection)
    finally:
        await connection.close()
    assert await queued() == [task_id]
