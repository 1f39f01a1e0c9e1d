"""Validated SQL identifiers: the only way a configured name reaches a statement.

Every table, schema, index and channel name the driver puts into SQL text comes from a
`TableNames` instance, whose constructor checks each configured name against
`IDENTIFIER_PATTERN` and quotes it. Nothing else is ever formatted into a statement; values
always travel as bind parameters.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What a configured schema or table name may look like (checked with `fullmatch`)."""

MAX_NAME_LENGTH = 48
"""Longest configured name: PostgreSQL keeps 63 bytes, and index names add a suffix."""


class InvalidIdentifierError(ValueError):
    """A configured schema or table name is not a plain SQL identifier."""


def validate_identifier(name: str, what: str) -> str:
    """Return `name` unchanged when it is a plain SQL identifier.

    Args:
        name: The configured name.
        what: What the name is for (used in the error message), e.g. ``"queue_table"``.

    Returns:
        The name.

    Raises:
        InvalidIdentifierError: When the name is empty, too long or has characters other
            than ASCII letters, digits and underscores (or starts with a digit).
    """
    if not isinstance(name, str) or not IDENTIFIER_PATTERN.fullmatch(name):
        raise InvalidIdentifierError(
            f"{what}={name!r} is not a valid identifier: use letters, digits and underscores, "
            "not starting with a digit"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidIdentifierError(f"{what}={name!r} is longer than {MAX_NAME_LENGTH} characters")
    return name


def quote_identifier(name: str) -> str:
    """Quote a validated identifier for SQL text (``"name"``, doubling any quote)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string as an SQL literal (``'value'``, doubling any single quote)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class TableNames:
    """The schema objects of one queue, validated once and quoted for SQL text.

    Attributes:
        schema: Schema name (unquoted).
        queue_table: Queue table name (unquoted).
        dead_letter_table: Dead-letter table name (unquoted).
        migrations_table: Migrations bookkeeping table name (unquoted).
    """

    schema: str
    queue_table: str
    dead_letter_table: str
    migrations_table: str

    def __post_init__(self) -> None:
        validate_identifier(self.schema, "schema")
        validate_identifier(self.queue_table, "queue_table")
        validate_identifier(self.dead_letter_table, "dead_letter_table")
        validate_identifier(self.migrations_table, "migrations_table")
        if len({self.queue_table, self.dead_letter_table, self.migrations_table}) != 3:
            raise InvalidIdentifierError(
                "queue_table, dead_letter_table and migrations_table must be different names"
            )
        derived = {
            self.results_table,
            self.status_table,
            self.log_table,
            self.workers_table,
            self.claims_table,
        }
        clash = derived & {self.dead_letter_table, self.migrations_table}
        if clash:
            raise InvalidIdentifierError(
                f"{', '.join(sorted(clash))} is the name of a table the driver derives from "
                f"queue_table={self.queue_table!r}: choose different names"
            )

    @property
    def quoted_schema(self) -> str:
        """The schema, quoted."""
        return quote_identifier(self.schema)

    @property
    def queue(self) -> str:
        """The queue table, schema-qualified and quoted."""
        return self._qualified(self.queue_table)

    @property
    def dead_letter(self) -> str:
        """The dead-letter table, schema-qualified and quoted."""
        return self._qualified(self.dead_letter_table)

    @property
    def migrations(self) -> str:
        """The migrations table, schema-qualified and quoted."""
        return self._qualified(self.migrations_table)

    @property
    def results_table(self) -> str:
        """The kept-results table name (unquoted): ``<queue_table>_results`` (at most 56
        bytes: table names are validated to 48)."""
        return f"{self.queue_table}_results"

    @property
    def results(self) -> str:
        """The kept-results table, schema-qualified and quoted."""
        return self._qualified(self.results_table)

    @property
    def status_table(self) -> str:
        """The task status table name (unquoted): ``<queue_table>_status``."""
        return f"{self.queue_table}_status"

    @property
    def status(self) -> str:
        """The task status table, schema-qualified and quoted."""
        return self._qualified(self.status_table)

    @property
    def log_table(self) -> str:
        """The append-only logs table name (unquoted): ``<queue_table>_log``."""
        return f"{self.queue_table}_log"

    @property
    def log(self) -> str:
        """The append-only logs table, schema-qualified and quoted."""
        return self._qualified(self.log_table)

    @property
    def workers_table(self) -> str:
        """The worker registry table name (unquoted): ``<queue_table>_workers``."""
        return f"{self.queue_table}_workers"

    @property
    def workers(self) -> str:
        """The worker registry table, schema-qualified and quoted."""
        return self._qualified(self.workers_table)

    @property
    def claims_table(self) -> str:
        """The named claims table name (unquoted): ``<queue_table>_claims``."""
        return f"{self.queue_table}_claims"

    @property
    def claims(self) -> str:
        """The named claims table, schema-qualified and quoted."""
        return self._qualified(self.claims_table)

    @property
    def log_lock_prefix(self) -> str:
        """Text that, followed by a log's name, is hashed into the advisory lock ordering
        that log's appends and reads (see `asynctasq_postgres.sql`)."""
        return f"asynctasq-log:{self.schema}.{self.queue_table}:"

    def index(self, table: str, suffix: str) -> str:
        """An index name for `table` (unqualified and quoted: indexes live in its schema)."""
        return quote_identifier(f"{table}_{suffix}")

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this queue table (unquoted, at most 63 bytes)."""
        name = f"asynctasq.{self.schema}.{self.queue_table}"
        if len(name) <= 63:
            return name
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:24]
        return f"asynctasq.{digest}"

    @property
    def lock_key(self) -> str:
        """Text hashed into the advisory lock that serialises migrations of these tables."""
        return f"asynctasq-migrate:{self.schema}.{self.queue_table}"

    def _qualified(self, table: str) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(table)}"


__all__ = [
    "IDENTIFIER_PATTERN",
    "InvalidIdentifierError",
    "TableNames",
    "quote_identifier",
    "quote_literal",
    "validate_identifier",
]
