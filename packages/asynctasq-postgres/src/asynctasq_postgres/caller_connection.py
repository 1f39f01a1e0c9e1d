"""The caller's connection for ``dispatch(connection=...)``: asyncpg, or SQLAlchemy's async
objects on asyncpg, always inside the caller's transaction."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from asynctasq.drivers.sql.caller import (
    driver_connection,
    other_client,
    refusal,
    sqlalchemy_async,
)
from asynctasq_postgres._types import Connection

WHAT_TO_PASS = (
    "pass an asyncpg connection, or a SQLAlchemy AsyncSession or AsyncConnection on "
    "postgresql+asyncpg"
)


async def caller_connection(connection: object) -> Connection:
    """The asyncpg connection behind `connection`, in the same transaction.

    Args:
        connection: An asyncpg connection (plain or from a pool), a SQLAlchemy
            ``AsyncSession`` (its transaction is begun if it has none yet, as any statement
            would) or ``AsyncConnection``.

    Raises:
        TypeError: anything else, including SQLAlchemy's sync ``Session`` and
            ``Connection`` (they do not run on asyncpg), or an engine on another driver
            than asyncpg; the message says what to pass.
    """
    if isinstance(connection, asyncpg.Connection | PoolConnectionProxy):
        return connection
    sa_connection = await sqlalchemy_async(connection)
    if sa_connection is None:
        raise refusal(connection, "postgres", WHAT_TO_PASS)
    return await _from_sqlalchemy(sa_connection)


async def _from_sqlalchemy(connection: Any) -> Connection:
    client = await driver_connection(connection)
    if not isinstance(client, asyncpg.Connection):
        raise other_client(client, "asyncpg", "postgresql+asyncpg")
    if not client.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with the first statement of a
        # transaction: one through SQLAlchemy starts it, so our insert joins it (and commits
        # or rolls back with it). Under AUTOCOMMIT none starts, as the caller asked.
        await connection.exec_driver_sql("SELECT 1")
    return client
