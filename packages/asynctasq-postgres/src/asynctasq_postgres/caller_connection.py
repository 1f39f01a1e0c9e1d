"""The caller's connection for ``dispatch(connection=...)``: asyncpg, or SQLAlchemy's async
objects on asyncpg (see `asynctasq.drivers.sql.caller`)."""

from __future__ import annotations

from typing import Any, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from asynctasq.drivers.sql.caller import CallerClient, SameDatabase, Where, caller_client
from asynctasq_postgres._types import Connection


async def _join(sa_connection: Any, client: Connection) -> None:
    if not client.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with the first statement of a
        # transaction: one through SQLAlchemy starts it, so our insert joins it (and commits
        # or rolls back with it). Under AUTOCOMMIT none starts, as the caller asked.
        await sa_connection.exec_driver_sql("SELECT 1")


ASYNCPG = CallerClient(
    "postgres", "asyncpg", "postgresql+asyncpg", (asyncpg.Connection, PoolConnectionProxy), _join
)


async def where(connection: Connection) -> Where:
    """The database `connection` is on."""
    name: str = await connection.fetchval("SELECT current_database()")
    return name


def same_database() -> SameDatabase:
    """The check that a caller's connection is on the driver's database (asked once per
    connection: a PostgreSQL connection never changes its database)."""
    return SameDatabase(ASYNCPG, where, per_connection=True)


async def caller_connection(connection: object) -> Connection:
    """The asyncpg connection behind `connection` (an asyncpg connection, or a SQLAlchemy
    ``AsyncSession`` or ``AsyncConnection`` on asyncpg), in the caller's transaction.

    Raises:
        TypeError: anything else; the message says what to pass.
    """
    return cast(Connection, await caller_client(connection, ASYNCPG))
