"""What the SQL drivers share, without a database client: identifier validation and quoting
(`asynctasq.drivers.sql.naming`).

Each driver supplies a `Dialect` (how its server quotes and bounds names); the rules live
here once, after Django's ``BaseDatabaseSchemaEditor``.
"""

from asynctasq.drivers.sql.naming import (
    IDENTIFIER_PATTERN,
    Dialect,
    InvalidIdentifierError,
)

__all__ = ["IDENTIFIER_PATTERN", "Dialect", "InvalidIdentifierError"]
