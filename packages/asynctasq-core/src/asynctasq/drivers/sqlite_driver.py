"""Stable import path for the sqlite driver, which lives in the `asynctasq-sqlite` package."""

from asynctasq.drivers._shim import require

SqliteDriver = require("asynctasq_sqlite", "SqliteDriver", "asynctasq-sqlite")

__all__ = ["SqliteDriver"]
