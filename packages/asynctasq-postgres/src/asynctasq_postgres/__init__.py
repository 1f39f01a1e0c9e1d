"""PostgreSQL driver for AsyncTasQ (asyncpg).

Example:
    ```python
    from asynctasq_postgres import PostgresDriver

    driver = PostgresDriver("postgresql://app:secret@db/app", queue_table="task_queue")
    await driver.init_schema()  # or: asynctasq migrate --driver postgres
    ```
"""

from asynctasq.errors import SchemaNotInitializedError  # re-exported: public since 0.1
from asynctasq_postgres.driver import PostgresDriver
from asynctasq_postgres.dsn import redact_dsn
from asynctasq_postgres.naming import InvalidIdentifierError, TableNames
from asynctasq_postgres.schema import LATEST_VERSION, migration_sql

__all__ = [
    "LATEST_VERSION",
    "InvalidIdentifierError",
    "PostgresDriver",
    "SchemaNotInitializedError",
    "TableNames",
    "migration_sql",
    "redact_dsn",
]
