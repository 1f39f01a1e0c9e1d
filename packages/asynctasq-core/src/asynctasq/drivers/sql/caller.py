"""The caller's connection for ``dispatch(connection=...)``: the database client's own
connection, or SQLAlchemy's async objects on that client, reduced to it in the caller's
transaction. Each SQL driver describes its client once (`CallerClient`); the unwrapping,
the checks and the errors that name what to pass are here.

SQLAlchemy is never imported here: an object can only be one of its sessions if the caller
imported it already, so its classes are looked up in ``sys.modules``.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Where = str | None
"""The database a connection is on (None: none chosen)."""


@dataclass(frozen=True, slots=True)
class CallerClient:
    """How one SQL driver queues through the caller's connection.

    Attributes:
        driver: The driver's name, for errors (``postgres``).
        client: The database client's name (``asyncpg``).
        scheme: SQLAlchemy's URL scheme for that client (``postgresql+asyncpg``).
        accepts: The client's connection types.
        join: Called with the SQLAlchemy ``AsyncConnection`` and the client's connection
            under it: makes sure what the driver runs next joins the caller's transaction.
    """

    driver: str
    client: str
    scheme: str
    accepts: tuple[type, ...]
    join: Callable[[Any, Any], Awaitable[None]]

    @property
    def what_to_pass(self) -> str:
        return (
            f"pass an {self.client} connection, or a SQLAlchemy AsyncSession or "
            f"AsyncConnection on {self.scheme}"
        )


async def caller_client(connection: object, spec: CallerClient) -> Any:
    """The client connection of `spec` behind `connection`, in the caller's transaction.

    Args:
        connection: A connection of the client (plain or from a pool), a SQLAlchemy
            ``AsyncSession`` (its transaction is begun if it has none yet, as any statement
            would) or ``AsyncConnection`` on that client.

    Raises:
        TypeError: anything else, including SQLAlchemy's sync ``Session`` and
            ``Connection`` (they do not run on the async client), or an engine on another
            client; the message says what to pass.
    """
    if isinstance(connection, spec.accepts):
        return connection
    sa_connection = await _sqlalchemy_async(connection)
    if sa_connection is None:
        raise _refusal(connection, spec)
    client = (await sa_connection.get_raw_connection()).driver_connection
    if not isinstance(client, spec.accepts):
        raise TypeError(
            "dispatch(connection=...) got a SQLAlchemy connection on "
            f"{type(client).__module__}, not {spec.client}: create the engine with a "
            f"{spec.scheme}:// URL"
        )
    await spec.join(sa_connection, client)
    return client


async def _sqlalchemy_async(connection: object) -> Any | None:
    """The ``AsyncConnection`` behind a SQLAlchemy ``AsyncSession`` or ``AsyncConnection``,
    or None when `connection` is neither."""
    sa_async: Any = sys.modules.get("sqlalchemy.ext.asyncio")
    if sa_async is None:
        return None
    if isinstance(connection, sa_async.AsyncSession):
        connection = await connection.connection()
    if isinstance(connection, sa_async.AsyncConnection):
        return connection
    return None


class SameDatabase:
    """Refuses a caller's connection on another database than the driver's: an insert there
    succeeds when that database has tables of its own, and the task is stored where no
    worker looks.

    Only the database's name is compared: what tells servers apart (an address, a start
    time) differs between a primary and the replica a read-routing proxy sends the driver's
    own query to, and session settings change how it prints. A database of the same name on
    another server is not caught.

    Args:
        spec: The driver's client, for the error.
        where: Runs the driver's which-database query on a client connection.
        per_connection: Ask each connection once (PostgreSQL: a connection never changes its
            database); otherwise ask every time (MySQL: ``USE`` changes it).
    """

    def __init__(
        self,
        spec: CallerClient,
        where: Callable[[Any], Awaitable[Where]],
        *,
        per_connection: bool,
    ) -> None:
        self._spec = spec
        self._where = where
        self._seen: weakref.WeakKeyDictionary[Any, Where] | None = (
            weakref.WeakKeyDictionary() if per_connection else None
        )
        self._own: Where | None = None

    async def check(self, caller: Any, own: Callable[[], Awaitable[Where]]) -> None:
        """Raise ValueError unless `caller` is on the database `own()` (the driver's pool)
        reports."""
        theirs = await self._of(caller)
        if self._own is None:
            self._own = await own()
        if theirs == self._own:
            return
        there = "no database" if theirs is None else f"database {theirs!r}"
        raise ValueError(
            f"dispatch(connection=...) got a connection to {there}, but the {self._spec.driver} "
            f"driver queues in database {self._own!r}: the task would be stored where no "
            "worker looks; pass a connection to that database, or dispatch without "
            "connection= (queued at once, outside the transaction)"
        )

    async def _of(self, connection: Any) -> Where:
        seen = self._seen
        if seen is None:
            return await self._where(connection)
        with contextlib.suppress(KeyError, TypeError):  # TypeError: not weakly referable
            return seen[connection]
        found = await self._where(connection)
        with contextlib.suppress(TypeError):
            seen[connection] = found
        return found


def _is_sqlalchemy_sync(connection: object) -> bool:
    orm: Any = sys.modules.get("sqlalchemy.orm")
    engine: Any = sys.modules.get("sqlalchemy.engine")
    return (orm is not None and isinstance(connection, orm.Session)) or (
        engine is not None and isinstance(connection, engine.Connection)
    )


def _refusal(connection: object, spec: CallerClient) -> TypeError:
    if _is_sqlalchemy_sync(connection):
        return TypeError(
            f"dispatch(connection=...) got a sync SQLAlchemy {type(connection).__name__}: the "
            f"{spec.driver} driver queues through an async client, which a sync session "
            f"does not use: {spec.what_to_pass}, or from sync code use "
            "asynctasq_orm_sqlalchemy.dispatch_after_commit(session, task)"
        )
    return TypeError(
        f"dispatch(connection=...) got {type(connection).__module__}."
        f"{type(connection).__qualname__}, which the {spec.driver} driver cannot queue "
        f"through: {spec.what_to_pass}"
    )


__all__ = ["CallerClient", "SameDatabase", "Where", "caller_client"]
