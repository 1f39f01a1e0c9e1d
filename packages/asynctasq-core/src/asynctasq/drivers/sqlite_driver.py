"""Stable import path for the sqlite driver, which lives in the `asynctasq-sqlite` package."""

from typing import TYPE_CHECKING

from asynctasq.drivers._shim import require

if TYPE_CHECKING:
    # Type checkers see the real class (and users get its signature); at run time the shim
    # imports it, or says which package to install.
    from asynctasq_sqlite import SqliteDriver
else:
    SqliteDriver = require("asynctasq_sqlite", "SqliteDriver", "asynctasq-sqlite")

__all__ = ["SqliteDriver"]
