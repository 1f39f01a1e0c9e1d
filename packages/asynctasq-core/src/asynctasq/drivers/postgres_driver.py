"""Stable import path for the postgres driver, which lives in the `asynctasq-postgres` package."""

from asynctasq.drivers._shim import require

PostgresDriver = require("asynctasq_postgres", "PostgresDriver", "asynctasq-postgres")

__all__ = ["PostgresDriver"]
