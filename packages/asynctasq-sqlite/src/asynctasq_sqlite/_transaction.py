"""Write transactions that take the database write lock up front."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a ``BEGIN IMMEDIATE`` transaction; commit, or roll back on error.

    ``IMMEDIATE`` takes the write lock before the first read, so the busy timeout applies to
    the wait for it and a transaction that reads then writes can never fail half-way with
    ``SQLITE_BUSY`` because another process wrote in between (WAL snapshot conflict).

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).

    Yields:
        The same connection, inside the transaction.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # SQLite rolls back by itself after some errors (e.g. SQLITE_FULL); don't mask the
        # original error with "no transaction is active".
        if conn.in_transaction:
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
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


__all__ = ["immediate", "snapshot"]
