"""Stable import path for the mysql driver, which lives in the `asynctasq-mysql` package."""

from asynctasq.drivers._shim import require

MySQLDriver = require("asynctasq_mysql", "MySQLDriver", "asynctasq-mysql")

__all__ = ["MySQLDriver"]
