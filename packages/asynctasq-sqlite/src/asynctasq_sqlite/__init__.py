"""AsyncTasQ driver for a queue in one SQLite file: the embedded default, no server.

Example: ``SqliteDriver(path="asynctasq.db")``; see `SqliteDriver` for the settings.
"""

from asynctasq_sqlite.driver import SqliteDriver
from asynctasq_sqlite.errors import SqliteDriverError
from asynctasq_sqlite.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SqliteDriver", "SqliteDriverError"]
