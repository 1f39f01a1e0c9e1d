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
    """The database `connection` is on (None: none chosen), and its server as the server
    names itself (host name and port), whatever address reached it."""
    async with connection.cursor() as cursor:
        await cursor.execute("SELECT DATABASE(), CONCAT(@@hostname, ':', @@port)")
        row = await cursor.fetchone()
    return row[0], row[1]


def same_database() -> SameDatabase:
    """The check that a caller's connection reaches the driver's database."""
    return SameDatabase(AIOMYSQL, where)


async def caller_connection(connection: object) -> aiomysql.Connection:
    """The aiomysql connection behind `connection` (an aiomysql connection, or a SQLAlchemy
    ``AsyncSession`` or ``AsyncConnection`` on aiomysql), in the caller's transaction.

    Raises:
        TypeError: anything else; the message says what to pass.
    """
    return cast(aiomysql.Connection, await caller_client(connection, AIOMYSQL))
