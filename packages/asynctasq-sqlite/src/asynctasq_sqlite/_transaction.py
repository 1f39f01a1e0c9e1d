"""Write transactions that take the database write lock up front."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


def _in_transaction(conn: sqlite3.Connection) -> bool:
    # A function, not the attribute inline: statements change it, and a type checker
    # would otherwise keep the value it narrowed to before them.
    return conn.in_transaction


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a ``BEGIN IMMEDIATE`` transaction; commit, or roll back on error.

    ``IMMEDIATE`` takes the write lock before the first read, so the busy timeout applies to
    the wait for it and a transaction that reads then writes can never fail half-way with
    ``SQLITE_BUSY`` because another process wrote in between (WAL snapshot conflict).
    Inside an open transaction (a group commit) the block is a ``SAVEPOINT`` instead.

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).

    Yields:
        The same connection, inside the transaction.
    """
    if _in_transaction(conn):
        # Part of a group commit (`asynctasq_sqlite._group_commit`): the group's
        # transaction already holds the write lock; a savepoint lets this operation fail
        # alone.
        conn.execute("SAVEPOINT operation")
        try:
            yield conn
        except BaseException:
            if _in_transaction(conn):
                conn.execute("ROLLBACK TO operation")
                conn.execute("RELEASE operation")
            raise
        conn.execute("RELEASE operation")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # SQLite rolls back by itself after some errors (e.g. SQLITE_FULL); don't mask the
        # original error with "no transaction is active".
        if _in_transaction(conn):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run several reads on one consistent snapshot (a deferred read transaction).

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).

    Yields:
        The same connection, inside the transaction.
    """
    if _in_transaction(conn):
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if _in_transaction(conn):
            conn.execute("COMMIT")


__all__ = ["immediate", "snapshot"]
