"""Errors raised by the SQLite driver."""

from __future__ import annotations

from asynctasq.errors import AsyncTasQError


class SqliteDriverError(AsyncTasQError):
    """The queue database cannot be used: corrupt, unwritable or from a newer driver.

    Raised by `SqliteDriver.connect()` (and so by the first operation when connection is
    lazy), with the file path and SQLite's reason in the message, e.g.
    ``cannot open queue database '/srv/app/asynctasq.db': file is not a database``.
    """


__all__ = ["SqliteDriverError"]
