"""The caller's SQLAlchemy objects for ``dispatch(connection=...)``, reduced to the database
client's own connection in the caller's transaction; the SQL drivers then check that client.

SQLAlchemy is never imported here: an object can only be one of its sessions if the caller
imported it already, so its classes are looked up in ``sys.modules``.
"""

from __future__ import annotations

import sys
from typing import Any


async def sqlalchemy_async(connection: object) -> Any | None:
    """The ``AsyncConnection`` behind a SQLAlchemy ``AsyncSession`` or ``AsyncConnection``
    (a session's transaction is begun if it has none yet, as any statement would), or None
    when `connection` is neither."""
    sa_async: Any = sys.modules.get("sqlalchemy.ext.asyncio")
    if sa_async is None:
        return None
    if isinstance(connection, sa_async.AsyncSession):
        connection = await connection.connection()
    if isinstance(connection, sa_async.AsyncConnection):
        return connection
    return None


async def driver_connection(connection: Any) -> Any:
    """The database client's connection under a SQLAlchemy ``AsyncConnection``."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection


def other_client(client: object, wanted: str, scheme: str) -> TypeError:
    """The error for a SQLAlchemy connection whose database client is not `wanted`."""
    return TypeError(
        f"dispatch(connection=...) got a SQLAlchemy connection on {type(client).__module__}, "
        f"not {wanted}: create the engine with a {scheme}:// URL"
    )


def is_sqlalchemy_sync(connection: object) -> bool:
    """Whether `connection` is a sync SQLAlchemy ``Session`` or ``Connection``."""
    orm: Any = sys.modules.get("sqlalchemy.orm")
    engine: Any = sys.modules.get("sqlalchemy.engine")
    return (orm is not None and isinstance(connection, orm.Session)) or (
        engine is not None and isinstance(connection, engine.Connection)
    )


def refusal(connection: object, driver: str, what_to_pass: str) -> TypeError:
    """The error for an object `driver` cannot queue through; it names what to pass."""
    if is_sqlalchemy_sync(connection):
        return TypeError(
            f"dispatch(connection=...) got a sync SQLAlchemy {type(connection).__name__}: the "
            f"{driver} driver queues through an async client, which a sync session does not "
            f"use: {what_to_pass}, or from sync code use "
            "asynctasq_orm_sqlalchemy.dispatch_after_commit(session, task)"
        )
    return TypeError(
        f"dispatch(connection=...) got {type(connection).__module__}."
        f"{type(connection).__qualname__}, which the {driver} driver cannot queue through: "
        f"{what_to_pass}"
    )


__all__ = [
    "driver_connection",
    "is_sqlalchemy_sync",
    "other_client",
    "refusal",
    "sqlalchemy_async",
]
