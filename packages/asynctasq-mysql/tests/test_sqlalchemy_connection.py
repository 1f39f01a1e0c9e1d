"""``dispatch(connection=...)`` on MySQL with SQLAlchemy's async session and connection
(mysql+aiomysql) on the real server: the rows exist if and only if the caller's transaction
commits; anything the driver cannot queue through is refused naming what to pass."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from asynctasq.drivers.base import OutgoingMessage
from asynctasq.lifecycle.dispatching import first_writes
from asynctasq.lifecycle.status import TaskStatus
from asynctasq_mysql import MySQLDriver


def msg() -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), "q", b"{}")


@pytest.fixture
async def engine(mysql_dsn: str) -> AsyncIterator[AsyncEngine]:
    scheme, rest = mysql_dsn.split("://", 1)
    assert scheme == "mysql", mysql_dsn
    created = create_async_engine(f"mysql+aiomysql://{rest}")
    yield created
    await created.dispose()


async def queued(driver: MySQLDriver) -> list[str]:
    deliveries = await driver.dequeue(["q"], limit=100, wait=0)
    await driver.release(deliveries)
    return sorted(d.task_id for d in deliveries)


@pytest.mark.parametrize("commit", [True, False])
async def test_an_async_session_commits_or_rolls_back_with_the_rows(
    driver: MySQLDriver, engine: AsyncEngine, admin: Any, commit: bool
) -> None:
    table = f"orders_{uuid.uuid4().hex[:10]}"
    async with admin.cursor() as cursor:
        await cursor.execute(f"CREATE TABLE `{table}` (id int) ENGINE=InnoDB")
    try:
        messages = [msg(), msg()]
        async with AsyncSession(engine) as session:
            await session.execute(text(f"INSERT INTO `{table}` VALUES (1)"))
            await driver.enqueue_with_connection(session, messages)
            assert await queued(driver) == []  # not deliverable before the commit
            await (session.commit() if commit else session.rollback())
        expected = sorted(m.task_id for m in messages) if commit else []
        assert await queued(driver) == expected
        async with admin.cursor() as cursor:
            await cursor.execute(f"SELECT count(*) FROM `{table}`")
            assert (await cursor.fetchone())[0] == (1 if commit else 0)
    finally:
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP TABLE IF EXISTS `{table}`")


async def test_the_rows_join_a_session_that_sent_nothing_yet(
    driver: MySQLDriver, engine: AsyncEngine
) -> None:
    async with AsyncSession(engine) as session:
        await driver.enqueue_with_connection(session, [msg()])
        await session.rollback()
    assert await queued(driver) == []
    committed = msg()
    async with AsyncSession(engine) as session:
        await driver.enqueue_with_connection(session, [committed])
        await session.commit()
    assert await queued(driver) == [committed.task_id]


async def test_an_engine_connection_in_commit_as_you_go_style(
    driver: MySQLDriver, engine: AsyncEngine
) -> None:
    async with engine.connect() as connection:
        await driver.enqueue_with_connection(connection, [msg()])
        await connection.rollback()
        assert await queued(driver) == []
        committed = msg()
        await driver.enqueue_with_connection(connection, [committed])
        await connection.commit()
    assert await queued(driver) == [committed.task_id]


async def test_a_sync_session_or_another_object_is_refused_naming_what_to_pass(
    driver: MySQLDriver,
) -> None:
    sync_engine = create_engine("sqlite://")
    try:
        with Session(sync_engine) as session:
            with pytest.raises(TypeError, match=r"sync SQLAlchemy Session.*AsyncSession") as e:
                await driver.enqueue_with_connection(session, [msg()])
            assert "dispatch_after_commit" in str(e.value)
            with pytest.raises(TypeError, match="sync SQLAlchemy Connection"):
                await driver.enqueue_with_connection(session.connection(), [msg()])
    finally:
        sync_engine.dispose()
    with pytest.raises(TypeError, match=r"builtins\.dict.*aiomysql connection"):
        await driver.enqueue_with_connection({"not": "a connection"}, [msg()])
    assert await queued(driver) == []


async def test_an_engine_on_another_client_is_refused(driver: MySQLDriver) -> None:
    sqlite = create_async_engine("sqlite+aiosqlite://")
    try:
        async with sqlite.connect() as connection:
            with pytest.raises(TypeError, match="not aiomysql.*mysql\\+aiomysql://"):
                await driver.enqueue_with_connection(connection, [msg()])
    finally:
        await sqlite.dispose()


@pytest.mark.parametrize("commit", [True, False])
async def test_status_records_commit_or_roll_back_with_their_messages(
    driver: MySQLDriver, engine: AsyncEngine, commit: bool
) -> None:
    message = msg()
    statuses = first_writes([(message, "shop:send_receipt", 60.0)])
    async with AsyncSession(engine) as session:
        await driver.enqueue_with_connection(session, [message], statuses=statuses)
        assert await driver.read_status(message.task_id) is None  # not visible before the commit
        await (session.commit() if commit else session.rollback())
    record = await driver.read_status(message.task_id)
    if commit:
        assert record is not None
        status = TaskStatus.decode(record)
        assert status is not None and status.state == "queued"
        assert await queued(driver) == [message.task_id]
    else:
        assert record is None and await queued(driver) == []


@pytest.mark.parametrize("through", ["session", "autocommit connection"])
async def test_a_status_record_is_not_kept_without_its_message(
    driver: MySQLDriver,
    engine: AsyncEngine,
    connect_raw: Any,
    monkeypatch: pytest.MonkeyPatch,
    through: str,
) -> None:
    # The insert fails after the status statement ran: MySQL undoes only the failed
    # statement, so a caller that catches the error and commits (or a connection in
    # autocommit mode) must not keep a record claiming a task that was never queued.
    message = msg()
    statuses = first_writes([(message, "shop:send_receipt", 60.0)])
    monkeypatch.setattr(
        driver,
        "_insert_statements",
        lambda connection, messages: [b"INSERT INTO no_such VALUES (1)"],
    )
    if through == "session":
        async with AsyncSession(engine) as session:
            with pytest.raises(Exception, match="no_such"):
                await driver.enqueue_with_connection(session, [message], statuses=statuses)
            await session.commit()
    else:
        conn = await connect_raw(autocommit=True)
        try:
            with pytest.raises(Exception, match="no_such"):
                await driver.enqueue_with_connection(conn, [message], statuses=statuses)
        finally:
            conn.close()
    assert await driver.read_status(message.task_id) is None


async def test_a_session_on_another_database_is_refused(
    driver: MySQLDriver, mysql_dsn: str, admin: Any, table_names: dict[str, str]
) -> None:
    """Queue tables of the same names exist there too, so an insert would succeed, and the
    tasks would wait where no worker looks."""
    database = f"atq_other_{uuid.uuid4().hex[:10]}"
    async with admin.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE `{database}`")
    scheme, rest = mysql_dsn.split("://", 1)
    other_dsn = f"{scheme}://{rest.rsplit('/', 1)[0]}/{database}"
    there = MySQLDriver(
        dsn=other_dsn,
        queue_table=table_names["queue"],
        dead_letter_table=table_names["dead_letter"],
        min_pool_size=1,
        max_pool_size=2,
    )
    other = create_async_engine(f"mysql+aiomysql://{other_dsn.split('://', 1)[1]}")
    try:
        await there.init_schema()
        refused = rf"database '{database}', but the mysql driver queues in database '\w+'"
        async with AsyncSession(other) as session:
            with pytest.raises(ValueError, match=refused):
                await driver.enqueue_with_connection(session, [msg()])
            await session.commit()
        assert await there.dequeue(["q"], limit=10, wait=0) == []
    finally:
        await there.close()
        await other.dispose()
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    assert await queued(driver) == []


async def test_the_database_is_asked_at_every_dispatch_whatever_the_cursor_class(
    driver: MySQLDriver, connect_raw: Any, admin: Any
) -> None:
    """``USE`` moves a MySQL connection to another database: a check remembered from an
    earlier dispatch would let the next insert land there. And a connection opened with
    DictCursor still works (its rows are dicts)."""
    import aiomysql

    database = f"atq_use_{uuid.uuid4().hex[:10]}"
    async with admin.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE `{database}`")
    conn = await connect_raw(cursorclass=aiomysql.DictCursor)
    try:
        first = msg()
        await conn.begin()
        await driver.enqueue_with_connection(conn, [first])
        await conn.commit()
        assert await queued(driver) == [first.task_id]
        async with conn.cursor() as cursor:
            await cursor.execute(f"USE `{database}`")
        await conn.begin()
        with pytest.raises(ValueError, match=rf"database '{database}', but the mysql driver"):
            await driver.enqueue_with_connection(conn, [msg()])
        await conn.rollback()
    finally:
        conn.close()
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    assert await queued(driver) == [first.task_id]
