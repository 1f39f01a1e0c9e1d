"""Versioned schema: numbered migrations, applied once each, under an advisory lock.

Each migration is idempotent SQL (``IF NOT EXISTS``) recorded in a small migrations table
beside the queue table, so `apply_migrations` can run from every worker at start-up, and the
script from `migration_sql` can be reviewed and run by hand (``asynctasq postgres migrate
--dry-run``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asynctasq_postgres._types import Connection
from asynctasq_postgres.naming import TableNames, quote_literal


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step.

    Attributes:
        version: Position in the sequence (1, 2, ...); applied in order, each once.
        description: One line saying what it does.
        render: Builds the SQL for a set of tables.
    """

    version: int
    description: str
    render: Callable[[TableNames], str]


def _v1_tables(n: TableNames) -> str:
    q, dlq = n.queue, n.dead_letter
    # Autovacuum thresholds: a queue table turns over its whole content constantly, so the
    # default 20 % scale factor lets dead index entries pile up in front of the dequeue scan.
    return f"""
CREATE TABLE IF NOT EXISTS {q} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id uuid NOT NULL,
    queue text NOT NULL,
    payload bytea NOT NULL,
    available_at timestamptz NOT NULL,
    visibility_timeout double precision NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    lease_seq integer NOT NULL DEFAULT 0,
    leased_until timestamptz,
    enqueued_at timestamptz NOT NULL DEFAULT now()
) WITH (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
COMMENT ON TABLE {q} IS 'AsyncTasQ queue: available_at is the next time a row may be leased';
CREATE INDEX IF NOT EXISTS {n.index(n.queue_table, "dequeue_idx")}
    ON {q} (queue, available_at, id);
CREATE TABLE IF NOT EXISTS {dlq} (
    task_id uuid PRIMARY KEY,
    queue text NOT NULL,
    payload bytea NOT NULL,
    attempts integer NOT NULL,
    visibility_timeout double precision NOT NULL,
    exception_type text NOT NULL,
    message text NOT NULL,
    traceback text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {dlq} IS 'AsyncTasQ dead letters of {n.schema}.{n.queue_table}';
CREATE INDEX IF NOT EXISTS {n.index(n.dead_letter_table, "queue_failed_idx")}
    ON {dlq} (queue, failed_at);
"""


def _v2_results(n: TableNames) -> str:
    # text, not uuid: `asynctasq.result(task_id)` may be handed any string by a caller.
    return f"""
CREATE TABLE IF NOT EXISTS {n.results} (
    task_id text PRIMARY KEY,
    result bytea NOT NULL,
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE {n.results} IS 'AsyncTasQ kept task results of {n.schema}.{n.queue_table}';
CREATE INDEX IF NOT EXISTS {n.index(n.results_table, "exp")} ON {n.results} (expires_at);
"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "queue and dead-letter tables", _v1_tables),
    Migration(2, "kept task results", _v2_results),
)
"""Every migration, in order. Append only; never edit a released one."""

LATEST_VERSION = MIGRATIONS[-1].version


def _bootstrap_sql(names: TableNames) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {names.quoted_schema};
CREATE TABLE IF NOT EXISTS {names.migrations} (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);"""


def migration_sql(names: TableNames) -> str:
    """The whole schema as one reviewable script (what a ``--dry-run`` prints).

    Running it by hand is equivalent to `apply_migrations`: every step is idempotent and
    records its version.

    Args:
        names: The validated table names.

    Returns:
        SQL text wrapped in one transaction.
    """
    parts = [
        "-- AsyncTasQ PostgreSQL schema "
        f"(version {LATEST_VERSION}) for {names.schema}.{names.queue_table}",
        "BEGIN;",
        f"SELECT pg_advisory_xact_lock(hashtext({quote_literal(names.lock_key)}));",
        _bootstrap_sql(names).strip(),
    ]
    for migration in MIGRATIONS:
        parts.append(f"-- migration {migration.version}: {migration.description}")
        parts.append(migration.render(names).strip())
        parts.append(
            f"INSERT INTO {names.migrations} (version, description) "
            f"VALUES ({migration.version}, {quote_literal(migration.description)}) "
            "ON CONFLICT (version) DO NOTHING;"
        )
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


async def apply_migrations(connection: Connection, names: TableNames) -> list[int]:
    """Bring the schema up to `LATEST_VERSION` (idempotent and safe to run concurrently).

    Args:
        connection: An asyncpg connection (not inside a transaction).
        names: The validated table names.

    Returns:
        The versions applied by this call (empty when the schema was already current).
    """
    applied: list[int] = []
    async with connection.transaction():
        # Concurrent workers starting together queue up here instead of racing on
        # CREATE SCHEMA / CREATE TABLE (which can fail with unique violations otherwise).
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", names.lock_key)
        await connection.execute(_bootstrap_sql(names))
        current = await connection.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {names.migrations}"
        )
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            await connection.execute(migration.render(names))
            await connection.execute(
                f"INSERT INTO {names.migrations} (version, description) VALUES ($1, $2)",
                migration.version,
                migration.description,
            )
            applied.append(migration.version)
    return applied


async def schema_version(connection: Connection, names: TableNames) -> int:
    """The applied schema version (0 when the migrations table does not exist)."""
    exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", names.migrations)
    if not exists:
        return 0
    version: int = await connection.fetchval(
        f"SELECT coalesce(max(version), 0) FROM {names.migrations}"
    )
    return version


__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "apply_migrations", "migration_sql"]
