"""The database schema, versioned with ``PRAGMA user_version`` and created idempotently.

One table holds every live message. A message's state is read from two columns:

* ``available_at`` (Unix time, seconds): when the row may next be handed out. For a ready or
  delayed message it is the enqueue time plus delay; for a leased message it is the lease
  expiry. So "ready" is always ``available_at <= now``, an expired lease is ready again with
  no sweeper, and one index ``(queue, available_at, id)`` serves the dequeue query in order
  (FIFO by due time, then insertion) as a range scan, without a sort.
* ``lease``: the random token of the current delivery, or NULL when nobody holds it. The
  receipt a consumer gets is ``(id, lease)``; a state change matches both, so a consumer
  whose lease expired and was handed to someone else changes nothing.

Dead letters live in their own table, with the failure and the original payload. Kept task
results (``keep_result``) live in a third, by task id, until they expire (version 2).

Version 3 adds the lifecycle tables, each row with an ``expires_at`` past which it is never
returned (and later deleted by a write):

* ``asynctasq_statuses``: one record per tracked task. Its primary key ``seq`` is the rowid,
  and a write replaces the row (``INSERT OR REPLACE`` on the unique ``task_id``), which
  gives it the next rowid: "most recently written first" is ``ORDER BY seq DESC``, served by
  the ``(queue, state, seq)`` and ``(state, seq)`` indexes without a counter to maintain.
* ``asynctasq_logs``: log entries (events, cancel requests). ``id`` is ``AUTOINCREMENT`` so
  that it is never reused, even after every entry of a log expired and was deleted: a
  reader's cursor (the last id it read) must never see an id that is not new. Writers are
  serialized by SQLite, so ids are also committed in order and a reader cannot skip one.
* ``asynctasq_workers``: one record per live worker, by worker id.

Version 4 adds ``asynctasq_claims``: named claims (schedule ticks, unique tasks), one row per
key with its holder and expiry (see `asynctasq_sqlite._claims`).

Version 5 adds ``priority`` (0-9, higher first) to the messages and the dead letters, and a
partial index ``(queue, priority, available_at) WHERE priority != 0``: rows of priority 0 (all
of them when nobody sets one) are not in it, so their writes cost nothing more, and the ready
rows of one level are a range scan of it in FIFO order (see `asynctasq_sqlite.sql`). The
condition is ``!=``, not ``> 0``: SQLite's planner would take a query's ``priority > 0`` as
the range to scan instead of its ``priority = ?``, and sort.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asynctasq.drivers.sql.migrations import (
    Migration,
    SchemaEditor,
    apply_migrations,
    migration_script,
    pending_versions,
    run_without_loop,
)
from asynctasq.errors import SchemaNotInitializedError
from asynctasq_sqlite._transaction import immediate
from asynctasq_sqlite.errors import SqliteDriverError

_CREATE_V1 = (
    """
    CREATE TABLE IF NOT EXISTS asynctasq_messages (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        queue TEXT NOT NULL,
        payload BLOB NOT NULL,
        visibility_timeout REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        available_at REAL NOT NULL,
        lease INTEGER,
        enqueued_at REAL NOT NULL
    )
    """,
    # The dequeue query: WHERE queue = ? AND available_at <= ? ORDER BY available_at, id.
    # Also answers min(available_at) per queue (the next due time) with one seek.
    """
    CREATE INDEX IF NOT EXISTS asynctasq_messages_dequeue
        ON asynctasq_messages (queue, available_at)
    """,
    """
    CREATE TABLE IF NOT EXISTS asynctasq_dead_letters (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        queue TEXT NOT NULL,
        payload BLOB NOT NULL,
        visibility_timeout REAL NOT NULL,
        attempts INTEGER NOT NULL,
        exception_type TEXT NOT NULL,
        message TEXT NOT NULL,
        traceback TEXT NOT NULL,
        failed_at REAL NOT NULL
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS asynctasq_dead_letters_queue
        ON asynctasq_dead_letters (queue)
    """,
    """
    CREATE INDEX IF NOT EXISTS asynctasq_dead_letters_task_id
        ON asynctasq_dead_letters (task_id)
    """,
)


_CREATE_V2 = (
    """
    CREATE TABLE IF NOT EXISTS asynctasq_results (
        task_id TEXT PRIMARY KEY,
        result BLOB NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    # Expired results are deleted by the next store: a range scan from the oldest.
    """
    CREATE INDEX IF NOT EXISTS asynctasq_results_expiry ON asynctasq_results (expires_at)
    """,
)

_CREATE_V3 = (
    """
    CREATE TABLE IF NOT EXISTS asynctasq_statuses (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        record BLOB NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS asynctasq_statuses_queue
        ON asynctasq_statuses (queue, state, seq)
    """,
    """
    CREATE INDEX IF NOT EXISTS asynctasq_statuses_state ON asynctasq_statuses (state, seq)
    """,
    # TTLs differ (unfinished tasks are kept longer), so expiry is not in seq order.
    """
    CREATE INDEX IF NOT EXISTS asynctasq_statuses_expiry ON asynctasq_statuses (expires_at)
    """,
    """
    CREATE TABLE IF NOT EXISTS asynctasq_logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        log TEXT NOT NULL,
        entry BLOB NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS asynctasq_logs_log ON asynctasq_logs (log, id)
    """,
    # Retention is per append, not per log: trimming needs its own index.
    """
    CREATE INDEX IF NOT EXISTS asynctasq_logs_expiry ON asynctasq_logs (expires_at)
    """,
    """
    CREATE TABLE IF NOT EXISTS asynctasq_workers (
        worker_id TEXT PRIMARY KEY,
        info BLOB NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
)
# Keys compare with the BINARY collation (byte for byte): no case or space folding.
_CREATE_V4 = (
    """
    CREATE TABLE IF NOT EXISTS asynctasq_claims (
        key TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE INDEX IF NOT EXISTS asynctasq_claims_expiry ON asynctasq_claims (expires_at)
    """,
)
# One transaction (BEGIN IMMEDIATE): an interrupted migration leaves nothing behind, so
# ADD COLUMN needs no existence check.
_CREATE_V5 = (
    "ALTER TABLE asynctasq_messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
    """
    CREATE INDEX IF NOT EXISTS asynctasq_messages_priority
        ON asynctasq_messages (queue, priority, available_at) WHERE priority != 0
    """,
    "ALTER TABLE asynctasq_dead_letters ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
)

MIGRATIONS = (
    Migration(1, "messages and dead letters", _CREATE_V1),
    Migration(2, "kept task results", _CREATE_V2),
    Migration(3, "task statuses, logs and workers", _CREATE_V3),
    Migration(4, "named claims (schedule ticks, unique tasks)", _CREATE_V4),
    Migration(5, "task priorities", _CREATE_V5),
)
"""Every migration, in order. Append only; never edit a released one."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The version this driver brings a file to (``PRAGMA user_version``)."""


class SqliteSchemaEditor(SchemaEditor):
    """SQLite's hooks for the migration runner: the version is ``PRAGMA user_version`` and the
    lock is one ``BEGIN IMMEDIATE`` transaction (DDL is transactional). The hooks are
    synchronous: they run on the driver's own thread (see `run_without_loop`)."""

    lock_when_current = True

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self._given = conn  # None: only the review script is rendered

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._given is None:
            raise RuntimeError("this schema editor renders the script only")
        return self._given

    async def applied_versions(self) -> set[int]:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        return set(range(1, int(version) + 1))

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        with immediate(self._conn):
            # Always write, even when current: a read-only file fails here, at connect time,
            # rather than at the first task.
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
            self._conn.execute(f"PRAGMA user_version = {int(version):d}")
            yield

    async def execute(self, statement: str) -> None:
        self._conn.execute(statement)

    async def record(self, migration: Migration) -> None:
        self._conn.execute(self.script_record(migration))

    def newer_than_driver(self, version: int, latest: int) -> Exception:
        return SqliteDriverError(
            f"schema version {version} is newer than this asynctasq-sqlite supports "
            f"({latest}); upgrade asynctasq-sqlite"
        )

    def script_prologue(self) -> list[str]:
        return ["BEGIN IMMEDIATE;"]

    def script_record(self, migration: Migration) -> str:
        return f"PRAGMA user_version = {migration.version:d}"

    def script_epilogue(self) -> list[str]:
        return ["COMMIT;"]


def ensure_schema(conn: sqlite3.Connection, *, migrate: bool = True) -> list[int]:
    """Create or upgrade the schema in one write transaction; a no-op when current.

    Always writes ``PRAGMA user_version``, even when unchanged, so that a read-only file
    fails here, at connect time, rather than at the first task.

    Args:
        conn: An open connection in autocommit mode (``isolation_level=None``).
        migrate: False: only check that the schema is current (``auto_migrate=False``).

    Returns:
        The schema versions applied now (empty when the schema was current).

    Raises:
        SqliteDriverError: The file was created by a newer version of this driver.
        SchemaNotInitializedError: `migrate` is False and the schema is missing or older.
        sqlite3.Error: The file is corrupt, locked beyond the busy timeout or read-only.
    """
    editor = SqliteSchemaEditor(conn)
    if not migrate:
        pending = run_without_loop(pending_versions(editor, MIGRATIONS))
        if pending:
            (path,) = conn.execute("SELECT file FROM pragma_database_list WHERE seq = 0").fetchone()
            raise SchemaNotInitializedError(f"queue database {path!r}", f"missing {pending}")
    return run_without_loop(apply_migrations(editor, MIGRATIONS))


def migration_sql() -> str:
    """The SQL `ensure_schema` runs on an empty file, for review (``migrate --dry-run``)."""
    statements = [
        Migration(m.version, m.description, tuple(" ".join(s.split()) for s in m.statements))
        for m in MIGRATIONS
    ]
    title = f"asynctasq-sqlite schema (version {SCHEMA_VERSION})"
    return migration_script(SqliteSchemaEditor(None), statements, title)


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteSchemaEditor", "ensure_schema", "migration_sql"]
