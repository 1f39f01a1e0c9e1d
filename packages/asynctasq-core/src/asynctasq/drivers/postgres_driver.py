"""Stable import path for the postgres driver, which lives in the `asynctasq-postgres` package."""

from typing import TYPE_CHECKING

from asynctasq.drivers._shim import require

if TYPE_CHECKING:
    # Type checkers see the real class (and users get its signature); at run time the shim
    # imports it, or says which package to install.
    from asynctasq_postgres import PostgresDriver
else:
    PostgresDriver = require("asynctasq_postgres", "PostgresDriver", "asynctasq-postgres")

__all__ = ["PostgresDriver"]
