"""The connection pool and the few ways the driver talks through it.

Connections run in autocommit mode with READ COMMITTED isolation (a dequeue's locking range
scan then takes no gap locks that would block concurrent enqueues) and with multi-statements
enabled, so a dequeue sends ``START TRANSACTION; SELECT ...`` and ``UPDATE ...; COMMIT`` as
one round-trip each. Values are always escaped and identifiers validated, so no input can
add a statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiomysql

from asynctasq_mysql.dsn import MySQLDSN
from asynctasq_mysql.server import is_transient_lock_error

_MULTI_STATEMENTS = 1 << 16  # CLIENT_MULTI_STATEMENTS capability flag
_LOCK_RETRIES = 3


async def create_pool(dsn: MySQLDSN, *, min_size: int, max_size: int, recycle: float) -> Any:
    """Open an `aiomysql.Pool` configured for the driver."""
    return await aiomysql.create_pool(
        minsize=min_size,
        maxsize=max_size,
        pool_recycle=recycle,
        autocommit=True,
        client_flag=_MULTI_STATEMENTS,
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        **dsn.connect_kwargs(),
    )


async def close_pool(pool: Any) -> None:
    """Close the pool, waiting for connections in use to come back."""
    pool.close()
    await pool.wait_closed()


def abandon(pool: Any) -> None:
    """Close a pool's connections without awaiting (their event loop may be gone)."""
    pool.close()
    for conn in [*pool._free, *pool._used]:  # aiomysql has no public "close all now"
        with contextlib.suppress(Exception):
            conn.close()


async def rollback_quietly(connection: Any) -> None:
    """Roll back if the connection still can; a dead one is rolled back by the server.

    aiomysql's pool closes a connection released mid-transaction, so it is never reused
    with a transaction open either way.
    """
    with contextlib.suppress(Exception):
        await connection.rollback()


@contextlib.asynccontextmanager
async def transaction(pool: Any) -> AsyncIterator[Any]:
    """A cursor inside ``BEGIN ... COMMIT`` (rolled back when the block raises)."""
    async with pool.acquire() as conn:
        await conn.begin()
        try:
            async with conn.cursor() as cursor:
                yield cursor
        except BaseException:
            await rollback_quietly(conn)
            raise
        await conn.commit()


async def execute(pool: Any, sql: str | bytes, params: Sequence[Any] | None = None) -> int:
    """Run one autocommit statement; retry it after a deadlock or lock wait timeout.

    Returns:
        The affected row count.
    """
    for attempt in range(_LOCK_RETRIES):
        try:
            async with pool.acquire() as conn, conn.cursor() as cursor:
                return int(await cursor.execute(sql, params))
        except Exception as exc:
            if attempt + 1 == _LOCK_RETRIES or not is_transient_lock_error(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def fetchall(pool: Any, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
    """Run one query and return its rows."""
    async with pool.acquire() as conn, conn.cursor() as cursor:
        await cursor.execute(sql, params)
        return list(await cursor.fetchall())


def lock_retries() -> range:
    """Attempts for a transaction that a deadlock or lock wait timeout may roll back."""
    return range(_LOCK_RETRIES)


__all__ = [
    "abandon",
    "close_pool",
    "create_pool",
    "execute",
    "fetchall",
    "lock_retries",
    "rollback_quietly",
    "transaction",
]
