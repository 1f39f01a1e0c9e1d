"""MySQL's table names: the only way a configured name reaches a statement.

Every identifier that reaches SQL is checked by the `MYSQL` dialect
(`asynctasq.drivers.sql.naming`: ``[A-Za-z_][A-Za-z0-9_]*``, up to 64 characters) and
backquoted; no SQL is ever built from an unchecked string.

The tables besides the queue, dead-letter and migrations tables are named after the queue
table: ``<queue_table>_results`` (migration 2), ``_statuses``, ``_logs``, ``_log_heads`` and
``_workers`` (migration 3), ``_claims`` (migration 4), each hashed when that is longer than
MySQL's 64 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from asynctasq.drivers.sql.naming import Dialect

MYSQL = Dialect(
    "MySQL",
    "`",
    max_length=64,
    max_identifier_length=64,
    # Table names compare ignoring case on some platforms (lower_case_table_names).
    case_insensitive=True,
    backslash_escapes=True,
)
"""MySQL and MariaDB identifiers: backquoted, at most 64 characters."""

_DERIVED = ("results", "statuses", "logs", "log_heads", "workers", "claims")


def identifier(name: str, *, what: str = "table name") -> str:
    """Validate a table name and return it backquoted.

    Raises:
        InvalidIdentifierError: The name is not 1-64 ASCII letters, digits and underscores
            starting with a letter or underscore.
    """
    return MYSQL.quote(MYSQL.identifier(name, what))


@dataclass(frozen=True, slots=True)
class TableNames:
    """The driver's tables, validated and backquoted.

    Attributes:
        queue: Backquoted queue table.
        dead_letter: Backquoted dead-letter table.
        migrations: Backquoted migrations table.
        results: Backquoted kept-results table (``<queue_table>_results``, hashed when that
            is longer than MySQL's 64 characters).
        raw_queue: The queue table's bare name (for lock names and messages).
        raw_dead_letter: The dead-letter table's bare name.
        statuses: Backquoted task status table (``<queue_table>_statuses``).
        logs: Backquoted log entry table (``<queue_table>_logs``).
        log_heads: Backquoted table of one row per log, locked by appends
            (``<queue_table>_log_heads``).
        workers: Backquoted worker record table (``<queue_table>_workers``).
        claims: Backquoted named claims table (``<queue_table>_claims``).
    """

    queue: str
    dead_letter: str
    migrations: str
    results: str
    raw_queue: str
    raw_dead_letter: str
    statuses: str
    logs: str
    log_heads: str
    workers: str
    claims: str

    @classmethod
    def build(
        cls, queue_table: str, dead_letter_table: str, migrations_table: str | None = None
    ) -> TableNames:
        """Validate the names; the migrations table defaults to ``<queue_table>_migrations``.

        Raises:
            InvalidIdentifierError: A name is invalid, or two of them (including the tables
                named after the queue table) are equal, ignoring case.
        """
        configured = {
            "queue_table": MYSQL.identifier(queue_table, "queue_table"),
            "dead_letter_table": MYSQL.identifier(dead_letter_table, "dead_letter_table"),
            "migrations_table": MYSQL.identifier(
                migrations_table or MYSQL.derived(queue_table, "migrations"), "migrations_table"
            ),
        }
        derived = {suffix: MYSQL.derived(queue_table, suffix) for suffix in _DERIVED}
        MYSQL.require_distinct({**configured, **{f"the {s}": n for s, n in derived.items()}})
        q = MYSQL.quote
        return cls(
            queue=q(queue_table),
            dead_letter=q(dead_letter_table),
            migrations=q(configured["migrations_table"]),
            results=q(derived["results"]),
            raw_queue=queue_table,
            raw_dead_letter=dead_letter_table,
            statuses=q(derived["statuses"]),
            logs=q(derived["logs"]),
            log_heads=q(derived["log_heads"]),
            workers=q(derived["workers"]),
            claims=q(derived["claims"]),
        )


__all__ = ["MYSQL", "TableNames", "identifier"]
