"""The migration runner every SQL driver uses (after Django's ``BaseDatabaseSchemaEditor``).

The runner holds the logic once: read the applied versions (a read only: a current schema
costs no lock and no DDL, so workers need no CREATE privilege), take the migration lock, read
them again under it (another process may have migrated meanwhile), apply each pending
migration in order and record its version. A driver supplies a `SchemaEditor`: its dialect's
hooks for locking (an advisory lock, ``GET_LOCK``, ``BEGIN IMMEDIATE``), reading and recording
the version, and executing a statement, plus the statements that frame a review script.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from asynctasq.errors import AsyncTasQError

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema step. Append only; never edit a released one.

    Attributes:
        version: Position in the sequence (1, 2, ...); applied in order, each once.
        description: One line saying what it does (recorded with the version).
        statements: The SQL it runs, in order; each safe to run again after an interruption
            where the dialect cannot roll DDL back (``IF NOT EXISTS``).
    """

    version: int
    description: str
    statements: tuple[str, ...]


class SchemaNewerThanDriverError(AsyncTasQError, RuntimeError):
    """The database's schema has a version this driver does not know: a newer release of
    the driver migrated it. Upgrade the driver."""


class SchemaEditor(ABC):
    """A dialect's hooks for `apply_migrations` and `migration_script`, bound to one
    connection."""

    @abstractmethod
    async def applied_versions(self) -> set[int]:
        """The versions applied so far; empty when the schema (or its version record) is
        missing. Reads only."""

    @abstractmethod
    def locked(self) -> AbstractAsyncContextManager[None]:
        """Hold the migration lock (and, where the dialect has transactional DDL, one
        transaction) for the block; create the version record (table) if missing."""

    @abstractmethod
    async def execute(self, statement: str) -> None:
        """Run one statement of a migration."""

    @abstractmethod
    async def record(self, migration: Migration) -> None:
        """Record that `migration` was applied (inside `locked`)."""

    lock_when_current: bool = False
    """Take the lock even when the schema is current (SQLite: that write is what shows a
    read-only file at connect, not at the first task)."""

    def newer_than_driver(self, version: int, latest: int) -> Exception:
        """The error for a schema at `version`, newer than the driver's `latest`."""
        return SchemaNewerThanDriverError(
            f"schema version {version} is newer than this driver supports ({latest}): "
            "upgrade the driver"
        )

    # -- the review script (``asynctasq migrate --dry-run``) ---------------------------------

    @abstractmethod
    def script_prologue(self) -> list[str]:
        """Statements that open the script: lock or transaction, the version table."""

    @abstractmethod
    def script_record(self, migration: Migration) -> str:
        """The statement recording `migration` in the script (idempotent)."""

    def script_epilogue(self) -> list[str]:
        """Statements that close the script (a COMMIT)."""
        return []


def _check_order(migrations: Sequence[Migration]) -> int:
    versions = [migration.version for migration in migrations]
    if not versions or versions != sorted(set(versions)) or versions[0] < 1:
        raise ValueError(f"migration versions must be ascending from 1 and unique: {versions}")
    return versions[-1]


async def pending_versions(editor: SchemaEditor, migrations: Sequence[Migration]) -> list[int]:
    """The versions not applied yet (reads only: a user without DDL privileges may ask).

    Raises:
        Exception: `SchemaEditor.newer_than_driver` when the schema is newer than the driver.
    """
    latest = _check_order(migrations)
    applied = await editor.applied_versions()
    if applied and max(applied) > latest:
        raise editor.newer_than_driver(max(applied), latest)
    return [migration.version for migration in migrations if migration.version not in applied]


async def apply_migrations(editor: SchemaEditor, migrations: Sequence[Migration]) -> list[int]:
    """Bring the schema up to the last of `migrations` (idempotent; safe when several
    processes run it at once: each version is applied by one of them).

    Returns:
        The versions this call applied, in order (empty when the schema was current).

    Raises:
        Exception: `SchemaEditor.newer_than_driver` when the schema is newer than the driver.
    """
    if not await pending_versions(editor, migrations) and not editor.lock_when_current:
        return []
    applied: list[int] = []
    async with editor.locked():
        # Read again under the lock: another process may have migrated while we waited.
        pending = set(await pending_versions(editor, migrations))
        for migration in migrations:
            if migration.version not in pending:
                continue
            for statement in migration.statements:
                await editor.execute(statement)
            await editor.record(migration)
            applied.append(migration.version)
    return applied


def migration_script(editor: SchemaEditor, migrations: Sequence[Migration], title: str) -> str:
    """Every migration as one reviewable script; running it by hand has the effect of
    `apply_migrations` on an empty database (each step idempotent and recorded)."""
    _check_order(migrations)
    parts = [f"-- {title}", *editor.script_prologue()]
    for migration in migrations:
        parts.append(f"-- migration {migration.version}: {migration.description}")
        parts.extend(_terminated(statement) for statement in migration.statements)
        parts.append(_terminated(editor.script_record(migration)))
    parts.extend(editor.script_epilogue())
    return "\n".join(parts) + "\n"


def _terminated(statement: str) -> str:
    statement = statement.strip()
    return statement if statement.endswith(";") else statement + ";"


def run_without_loop(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run `coroutine` to its end in this thread when none of its awaits suspends (an
    editor whose hooks are synchronous, as SQLite's on the driver's own thread), so the runner
    serves blocking drivers without an event loop.

    Raises:
        RuntimeError: The coroutine tried to suspend (a hook awaited real I/O).
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a synchronous schema editor's hook suspended")


__all__ = [
    "Migration",
    "SchemaEditor",
    "SchemaNewerThanDriverError",
    "apply_migrations",
    "migration_script",
    "pending_versions",
    "run_without_loop",
]
