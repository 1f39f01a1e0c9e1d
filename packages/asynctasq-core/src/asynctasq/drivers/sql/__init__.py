"""What the SQL drivers share, without a database client: identifier validation and quoting
(`asynctasq.drivers.sql.naming`) and the migration runner (`asynctasq.drivers.sql.migrations`).

Each driver supplies a `Dialect` (how its server quotes and bounds names) and a
`SchemaEditor` (how it locks, reads and records the version, executes); the logic lives here
once, after Django's ``BaseDatabaseSchemaEditor``.
"""

from asynctasq.drivers.sql.migrations import (
    Migration,
    SchemaEditor,
    SchemaNewerThanDriverError,
    apply_migrations,
    migration_script,
    pending_versions,
)
from asynctasq.drivers.sql.naming import (
    IDENTIFIER_PATTERN,
    Dialect,
    InvalidIdentifierError,
)

__all__ = [
    "IDENTIFIER_PATTERN",
    "Dialect",
    "InvalidIdentifierError",
    "Migration",
    "SchemaEditor",
    "SchemaNewerThanDriverError",
    "apply_migrations",
    "migration_script",
    "pending_versions",
]
