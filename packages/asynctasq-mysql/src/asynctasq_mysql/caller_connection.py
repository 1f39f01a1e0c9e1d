"""The caller's connection for ``dispatch(connection=...)``: aiomysql, or SQLAlchemy's async
objects on aiomysql, always inside the caller's transaction."""

from __future__ import annotations

import aiomysql

from asynctasq.drivers.sql.caller import (
    driver_connection,
    other_client,
    refusal,
    sqlalchemy_async,
)

WHAT_TO_PASS = (
    "pass an aiomysql connection, or a SQLAlchemy AsyncSession or AsyncConnection on mysql+aiomysql"
)


async def caller_connection(connection: object) -> aiomysql.Connection:
    """The aiomysql connection behind `connection`, in the same transaction.

    Args:
        connection: An aiomysql connection (plain or from a pool), a SQLAlchemy
            ``AsyncSession`` (its transaction is begun if it has none yet) or
            ``AsyncConnection``. Unless the caller chose autocommit, MySQL keeps every
            statement in the connection's open transaction, which the caller's commit or
            rollback ends: the queued rows go with it.

    Raises:
        TypeError: anything else, including SQLAlchemy's sync ``Session`` and
            ``Connection`` (they do not run on aiomysql), or an engine on another driver
            than aiomysql; the message says what to pass.
    """
    if isinstance(connection, aiomysql.Connection):
        return connection
    sa_connection = await sqlalchemy_async(connection)
    if sa_connection is None:
        raise refusal(connection, "mysql", WHAT_TO_PASS)
    client = await driver_connection(sa_connection)
    if not isinstance(client, aiomysql.Connection):
        raise other_client(client, "aiomysql", "mysql+aiomysql")
    if not sa_connection.in_transaction():
        # A connection used "commit as you go" between transactions: its commit() would
        # end nothing SQLAlchemy knows of, and our rows would be rolled back when the
        # connection goes back to the pool. Begin one, as its next statement would.
        await sa_connection.begin()
    return client
