"""The versioned schema and how to apply it.

Migrations are numbered; the migrations table records which ones ran, and a named server lock
(``GET_LOCK``) keeps two processes from applying them at once. Table names come from
`asynctasq_mysql.naming`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asynctasq.drivers.sql.migrations import Migration, SchemaEditor, migration_script
from asynctasq.drivers.sql.migrations import apply_migrations as run_migrations
from asynctasq.drivers.sql.migrations import pending_versions as pending
from asynctasq_mysql.naming import MYSQL, TableNames, identifier

_LOCK_TIMEOUT_SECONDS = 60
_NO_SUCH_TABLE = 1146  # ER_NO_SUCH_TABLE


def migrations(tables: TableNames) -> list[Migration]:
    """The schema history, oldest first.

    Args:
        tables: The validated table names.

    Returns:
        Every migration; `apply_migrations` runs those not yet recorded.
    """
    # Text columns are binary-collated: queue names and task ids compare byte for byte.
    create_queue = f"""CREATE TABLE IF NOT EXISTS {tables.queue} (
    `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    `task_id` VARCHAR(255) NOT NULL,
    `queue` VARCHAR(255) NOT NULL,
    `payload` LONGBLOB NOT NULL,
    `available_at` DATETIME(6) NOT NULL COMMENT 'due time; while leased, the lease deadline',
    `visibility_timeout` DOUBLE NOT NULL COMMENT 'lease length in seconds per delivery',
    `attempts` INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'deliveries so far',
    `lease_token` BIGINT UNSIGNED NULL COMMENT 'receipt of the current lease, NULL when not leased',
    `enqueued_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`id`),
    KEY `ix_dequeue` (`queue`, `available_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"""
    create_dead_letter = f"""CREATE TABLE IF NOT EXISTS {tables.dead_letter} (
    `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    `task_id` VARCHAR(255) NOT NULL,
    `queue` VARCHAR(255) NOT NULL,
    `payload` LONGBLOB NOT NULL,
    `visibility_timeout` DOUBLE NOT NULL,
    `attempts` INT UNSIGNED NOT NULL,
    `exception_type` TEXT NOT NULL,
    `error_message` MEDIUMTEXT NOT NULL,
    `traceback` MEDIUMTEXT NOT NULL,
    `failed_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`id`),
    KEY `ix_queue` (`queue`, `id`),
    KEY `ix_task_id` (`task_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"""
    # task_id is not unique in the queue table (a caller may resend), but a result is one
    # per id: the last run's outcome replaces an earlier one.
    create_results = f"""CREATE TABLE IF NOT EXISTS {tables.results} (
    `task_id` VARCHAR(255) NOT NULL,
    `result` LONGBLOB NOT NULL,
    `expires_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`task_id`),
    KEY `ix_expiry` (`expires_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"""
    return [
        Migration(1, "queue and dead-letter tables", (create_queue, create_dead_letter)),
        Migration(2, "kept task results", (create_results,)),
        Migration(3, "task statuses, logs and workers", _lifecycle_tables(tables)),
        Migration(4, "named claims (schedule ticks, unique tasks)", (_claims_table(tables),)),
        Migration(5, "task priorities", _priority_columns(tables)),
    ]


def _lifecycle_tables(tables: TableNames) -> tuple[str, ...]:
    """Migration 3: task status records, append-only logs and worker records.

    Statuses: ``task_id`` is the record's key (UNIQUE) and ``seq`` (AUTO_INCREMENT) the
    primary key. A write is a ``REPLACE``, which deletes the old row and inserts one with a
    new ``seq``: "most recently written first" is ``ORDER BY seq DESC``, from the
    ``(queue, state, seq)`` and ``(state, seq)`` indexes, with no counter row for every
    writer to lock. Clustering on ``seq`` also appends new rows at the end of the table
    rather than at random task-id positions.

    Logs: ``id`` is AUTO_INCREMENT, but InnoDB hands ids out at insert time, not at commit:
    a reader could see id 11 committed before id 10 and then skip 10 for good. So an append
    first locks its log's row in ``_log_heads`` (an upsert, held until COMMIT): appends to
    one log commit in id order, and a cursor (the last id read) never passes an id that is
    still to come.

    Every table has ``expires_at`` (server clock); expired rows are never returned and are
    deleted in bounded batches by later writes.
    """
    options = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"
    statuses = f"""CREATE TABLE IF NOT EXISTS {tables.statuses} (
    `seq` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'write order: a new one per write',
    `task_id` VARCHAR(255) NOT NULL,
    `queue` VARCHAR(255) NOT NULL,
    `state` VARCHAR(255) NOT NULL,
    `record` LONGBLOB NOT NULL,
    `expires_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`seq`),
    UNIQUE KEY `ux_task_id` (`task_id`),
    KEY `ix_queue_state` (`queue`, `state`, `seq`),
    KEY `ix_state` (`state`, `seq`),
    KEY `ix_expiry` (`expires_at`)
) {options}"""
    logs = f"""CREATE TABLE IF NOT EXISTS {tables.logs} (
    `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    `log` VARCHAR(255) NOT NULL,
    `entry` LONGBLOB NOT NULL,
    `expires_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`id`),
    KEY `ix_log` (`log`, `id`),
    KEY `ix_expiry` (`expires_at`)
) {options}"""
    log_heads = f"""CREATE TABLE IF NOT EXISTS {tables.log_heads} (
    `log` VARCHAR(255) NOT NULL,
    `appends` BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'bumped (so locked) by appends',
    PRIMARY KEY (`log`)
) {options}"""
    workers = f"""CREATE TABLE IF NOT EXISTS {tables.workers} (
    `worker_id` VARCHAR(255) NOT NULL,
    `info` LONGBLOB NOT NULL,
    `expires_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`worker_id`)
) {options}"""
    return (statuses, logs, log_heads, workers)


def _priority_columns(tables: TableNames) -> tuple[str, ...]:
    """Migration 5: a ``priority`` column on the queue and dead-letter tables, and the index
    the dequeue reads priorities 1-9 from (``ix_dequeue`` still serves priority 0).

    The index is descending on ``priority`` so the dequeue's ``ORDER BY priority DESC,
    available_at`` walks it without a sort (MySQL 8, MariaDB 10.8+; MariaDB 10.6 and 10.7
    ignore DESC and sort the ready rows of priorities 1-9).

    MySQL has no ``ADD COLUMN IF NOT EXISTS``: each ALTER runs only when information_schema
    shows the column missing, so the migration can run again after an interruption.
    """
    out: list[str] = []
    for table, raw, extra in (
        (
            tables.queue,
            tables.raw_queue,
            ", ADD KEY `ix_priority` (`queue`, `priority` DESC, `available_at`)",
        ),
        (tables.dead_letter, tables.raw_dead_letter, ""),
    ):
        alter = (
            f"ALTER TABLE {table} ADD COLUMN `priority` TINYINT UNSIGNED NOT NULL DEFAULT 0 "
            f"COMMENT 'higher is dequeued first'{extra}"
        )
        out += [
            "SET @asynctasq_ddl = (SELECT IF(COUNT(*) = 0, "
            + MYSQL.literal(alter)
            + ", 'DO 0') FROM information_schema.columns WHERE table_schema = DATABASE() "
            f"AND table_name = {MYSQL.literal(raw)} AND column_name = 'priority')",
            "PREPARE asynctasq_ddl FROM @asynctasq_ddl",
            "EXECUTE asynctasq_ddl",
            "DEALLOCATE PREPARE asynctasq_ddl",
        ]
    return tuple(out)


def _claims_table(tables: TableNames) -> str:
    """Migration 4: named claims, one row per key (see `asynctasq_mysql.claims`).

    Keys and holders are VARBINARY: compared byte for byte (no collation folds case, trailing
    spaces or accents), sized for the longest valid ones in UTF-8 (512 and 256 characters
    of up to 4 bytes: a 2 KiB key, under InnoDB's 3 KiB index limit with DYNAMIC rows).
    """
    return f"""CREATE TABLE IF NOT EXISTS {tables.claims} (
    `key` VARBINARY(2048) NOT NULL,
    `holder` VARBINARY(1024) NOT NULL,
    `expires_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`key`),
    KEY `ix_expiry` (`expires_at`)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC"""


def create_migrations_table(tables: TableNames) -> str:
    """The statement creating the table that records applied migrations."""
    return f"""CREATE TABLE IF NOT EXISTS {tables.migrations} (
    `version` INT UNSIGNED NOT NULL,
    `description` VARCHAR(255) NOT NULL,
    `applied_at` DATETIME(6) NOT NULL,
    PRIMARY KEY (`version`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


class MySQLSchemaEditor(SchemaEditor):
    """MySQL's hooks for the migration runner: a server-wide named lock (``GET_LOCK``); DDL
    commits implicitly, so each statement must be safe to run again after an interruption."""

    def __init__(self, connection: Any, tables: TableNames, database: str = "") -> None:
        self._connection = connection  # None: only the review script is rendered
        self._tables = tables
        self._database = database

    async def applied_versions(self) -> set[int]:
        async with self._connection.cursor() as cursor:
            try:
                await cursor.execute(f"SELECT `version` FROM {self._tables.migrations}")
            except Exception as exc:
                if exc.args and exc.args[0] == _NO_SUCH_TABLE:
                    return set()
                raise
            return {int(row[0]) for row in await cursor.fetchall()}

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        lock = _lock_name(self._database, self._tables)
        async with self._connection.cursor() as cursor:
            await cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, _LOCK_TIMEOUT_SECONDS))
            (granted,) = await cursor.fetchone()
            if granted != 1:
                raise TimeoutError(f"could not take the schema migration lock {lock!r}")
            # "Table already exists" notes would surface as Python warnings through aiomysql.
            await cursor.execute("SET SESSION sql_notes = 0")
            try:
                await cursor.execute(create_migrations_table(self._tables))
                yield
            finally:
                await cursor.execute("SET SESSION sql_notes = 1")
                await cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
                await cursor.fetchall()

    async def execute(self, statement: str) -> None:
        async with self._connection.cursor() as cursor:
            await cursor.execute(statement)

    async def record(self, migration: Migration) -> None:
        async with self._connection.cursor() as cursor:
            await cursor.execute(
                f"INSERT INTO {self._tables.migrations} (`version`, `description`, `applied_at`) "
                "VALUES (%s, %s, UTC_TIMESTAMP(6))",
                (migration.version, migration.description),
            )

    def script_prologue(self) -> list[str]:
        return [create_migrations_table(self._tables) + ";"]

    def script_record(self, migration: Migration) -> str:
        return (
            f"INSERT IGNORE INTO {self._tables.migrations} (`version`, `description`, "
            f"`applied_at`) VALUES ({migration.version}, {MYSQL.literal(migration.description)}, "
            "UTC_TIMESTAMP(6))"
        )


def migration_sql(tables: TableNames) -> str:
    """Every statement `apply_migrations` may run, as one script (for ``--dry-run``)."""
    title = f"asynctasq-mysql schema for {tables.queue}"
    return migration_script(MySQLSchemaEditor(None, tables), migrations(tables), title)


def _lock_name(database: str, tables: TableNames) -> str:
    # GET_LOCK names are server-wide and at most 64 characters: hash the qualified name.
    digest = hashlib.sha256(f"{database}.{tables.raw_queue}".encode()).hexdigest()[:32]
    return f"asynctasq_migrate_{digest}"


async def pending_versions(connection: Any, tables: TableNames) -> list[int]:
    """Versions not yet applied (all of them when the migrations table is missing).

    Reads only: a user without DDL privileges can run it against a migrated schema.
    """
    return await pending(MySQLSchemaEditor(connection, tables), migrations(tables))


async def apply_migrations(connection: Any, database: str, tables: TableNames) -> list[int]:
    """Apply the migrations not yet recorded, under a server-wide named lock.

    When nothing is pending, no lock is taken and no DDL runs, so connecting with
    ``auto_migrate`` needs no CREATE privilege once the schema is current.

    Args:
        connection: An `aiomysql.Connection` in autocommit mode (DDL commits implicitly).
        database: The database name (part of the lock name).
        tables: The validated table names.

    Returns:
        The versions applied by this call (empty when the schema was current).

    Raises:
        TimeoutError: Another process held the migration lock for too long.
    """
    editor = MySQLSchemaEditor(connection, tables, database)
    return await run_migrations(editor, migrations(tables))


__all__ = [
    "Migration",
    "TableNames",
    "apply_migrations",
    "identifier",
    "migration_sql",
    "migrations",
    "pending_versions",
]
