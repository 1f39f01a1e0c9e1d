"""PostgreSQL's table names: the only way a configured name reaches a statement.

Every table, schema, index and channel name the driver puts into SQL text comes from a
`TableNames` instance, whose constructor checks each configured name with the `POSTGRES`
dialect (`asynctasq.drivers.sql.naming`) and quotes it. Nothing else is ever formatted into a
statement; values always travel as bind parameters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asynctasq.drivers.sql.naming import Dialect, InvalidIdentifierError

POSTGRES = Dialect("PostgreSQL", '"', max_length=48, max_identifier_length=63)
"""PostgreSQL keeps 63 bytes of a name; configured names stop at 48 because index and
derived table names add a suffix."""

quote_identifier = POSTGRES.quote
"""Quote an identifier for SQL text (``"name"``, doubling any quote)."""

quote_literal = POSTGRES.literal
"""Quote a string as an SQL literal (``'value'``, doubling any single quote)."""


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
        POSTGRES.identifier(self.schema, "schema")
        POSTGRES.require_distinct(
            {
                "queue_table": POSTGRES.identifier(self.queue_table, "queue_table"),
                "dead_letter_table": POSTGRES.identifier(
                    self.dead_letter_table, "dead_letter_table"
                ),
                "migrations_table": POSTGRES.identifier(self.migrations_table, "migrations_table"),
                "the kept results": self.results_table,
                "the task statuses": self.status_table,
                "the logs": self.log_table,
                "the workers": self.workers_table,
                "the claims": self.claims_table,
            }
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
        return POSTGRES.derived(self.queue_table, "results")

    @property
    def results(self) -> str:
        """The kept-results table, schema-qualified and quoted."""
        return self._qualified(self.results_table)

    @property
    def status_table(self) -> str:
        """The task status table name (unquoted): ``<queue_table>_status``."""
        return POSTGRES.derived(self.queue_table, "status")

    @property
    def status(self) -> str:
        """The task status table, schema-qualified and quoted."""
        return self._qualified(self.status_table)

    @property
    def log_table(self) -> str:
        """The append-only logs table name (unquoted): ``<queue_table>_log``."""
        return POSTGRES.derived(self.queue_table, "log")

    @property
    def log(self) -> str:
        """The append-only logs table, schema-qualified and quoted."""
        return self._qualified(self.log_table)

    @property
    def workers_table(self) -> str:
        """The worker registry table name (unquoted): ``<queue_table>_workers``."""
        return POSTGRES.derived(self.queue_table, "workers")

    @property
    def workers(self) -> str:
        """The worker registry table, schema-qualified and quoted."""
        return self._qualified(self.workers_table)

    @property
    def claims_table(self) -> str:
        """The named claims table name (unquoted): ``<queue_table>_claims``."""
        return POSTGRES.derived(self.queue_table, "claims")

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


__all__ = ["POSTGRES", "InvalidIdentifierError", "TableNames", "quote_identifier", "quote_literal"]
