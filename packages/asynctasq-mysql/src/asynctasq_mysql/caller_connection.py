"""The caller's connection for ``dispatch(connection=...)``: aiomysql, or SQLAlchemy's async
objects on aiomysql (see `asynctasq.drivers.sql.caller`). Unless the caller chose
autocommit, MySQL keeps every statement in the connection's open transaction, which the
caller's commit or rollback ends: the queued rows go with it."""

from __future__ import annotations

from typing import Any, cast

import aiomysql

from asynctasq.drivers.sql.caller import CallerClient, SameDatabase, Where, caller_client


async def _join(sa_connection: Any, client: aiomysql.Connection) -> None:
    if not sa_connection.in_transaction():
        # A connection used "commit as you go" between transactions: its commit() would
        # end nothing SQLAlchemy knows of, and our rows would be rolled back when the
        # connection goes back to the pool. Begin one, as its next statement would.
        await sa_connection.begin()


AIOMYSQL = CallerClient("mysql", "aiomysql", "mysql+aiomysql", (aiomysql.Connection,), _join)


async def where(connection: aiomysql.Connection) -> Where:
    """The database `connection` is on (None: none chosen). A plain cursor, whatever
    cursor class the caller's connection was opened with (a DictCursor's rows are dicts)."""
    async with connection.cursor(aiomysql.Cursor) as cursor:
        await cursor.execute("SELECT DATABASE()")
        row = await cursor.fetchone()
    name: str | None = row[0]
    return name


def same_database() -> SameDatabase:
    """The check that a caller's connection is on the driver's database, asked at every
    dispatch: ``USE`` changes a MySQL connection's database."""
    return SameDatabase(AIOMYSQL, where, per_connection=False)


async def caller_connection(connection: object) -> aiomysql.Connection:
    """The aiomysql connection behind `connection` (an aiomysql connection, or a SQLAlchemy
    ``AsyncSession`` or ``AsyncConnection`` on aiomysql), in the caller's transaction.

    Raises:
        TypeError: anything else; the message says what to pass.
    """
    return cast(aiomysql.Connection, await caller_client(connection, AIOMYSQL))
