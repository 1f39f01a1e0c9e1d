"""The caller's connection for ``dispatch(connection=...)``: asyncpg, or SQLAlchemy's async
objects on asyncpg, always inside the caller's transaction.

SQLAlchemy is never imported here: an object can only be one of its sessions if the caller
imported it already, so it is looked up in ``sys.modules``.
"""

from __future__ import annotations

import sys
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

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
    sa_async: Any = sys.modules.get("sqlalchemy.ext.asyncio")
    if sa_async is not None:
        if isinstance(connection, sa_async.AsyncSession):
            # The session's connection, bound to its transaction (begun now if needed).
            connection = await connection.connection()
        if isinstance(connection, sa_async.AsyncConnection):
            return await _from_sqlalchemy(connection)
    if _sqlalchemy_sync(connection):
        raise TypeError(
            f"dispatch(connection=...) got a sync SQLAlchemy {type(connection).__name__}: "
            "the postgres driver queues through asyncpg, which a sync session does not use: "
            "pass the AsyncSession or AsyncConnection (postgresql+asyncpg), or from sync code "
            "use asynctasq_orm_sqlalchemy.dispatch_after_commit(session, task)"
        )
    raise TypeError(
        f"dispatch(connection=...) got {type(connection).__module__}."
        f"{type(connection).__qualname__}, which the postgres driver cannot queue through: "
        f"{WHAT_TO_PASS}"
    )


def _sqlalchemy_sync(connection: object) -> bool:
    orm: Any = sys.modules.get("sqlalchemy.orm")
    engine: Any = sys.modules.get("sqlalchemy.engine")
    return (orm is not None and isinstance(connection, orm.Session)) or (
        engine is not None and isinstance(connection, engine.Connection)
    )


async def _from_sqlalchemy(connection: Any) -> Connection:
    raw = await connection.get_raw_connection()
    driver_connection = raw.driver_connection
    if not isinstance(driver_connection, asyncpg.Connection):
        raise TypeError(
            "dispatch(connection=...) got a SQLAlchemy connection on "
            f"{type(driver_connection).__module__}, not asyncpg: create the engine with a "
            "postgresql+asyncpg:// URL"
        )
    if not driver_connection.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with the first statement of a
        # transaction: one through SQLAlchemy starts it, so our insert joins it (and commits
        # or rolls back with it). Under AUTOCOMMIT none starts, as the caller asked.
        await connection.exec_driver_sql("SELECT 1")
    return driver_connection
