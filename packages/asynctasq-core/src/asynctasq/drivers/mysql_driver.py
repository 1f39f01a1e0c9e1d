"""Stable import path for the mysql driver, which lives in the `asynctasq-mysql` package."""

from typing import TYPE_CHECKING

from asynctasq.drivers._shim import require

if TYPE_CHECKING:
    # Type checkers see the real class (and users get its signature); at run time the shim
    # imports it, or says which package to install.
    from asynctasq_mysql import MySQLDriver
else:
    MySQLDriver = require("asynctasq_mysql", "MySQLDriver", "asynctasq-mysql")

__all__ = ["MySQLDriver"]
