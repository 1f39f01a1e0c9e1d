"""`asynctasq.drivers.sql.migrations`: the runner's logic, on an editor that records calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from asynctasq.drivers.sql import (
    Migration,
    SchemaEditor,
    SchemaNewerThanDriverError,
    apply_migrations,
    migration_script,
    pending_versions,
)
from asynctasq.drivers.sql.migrations import run_without_loop

MIGRATIONS = [
    Migration(1, "one", ("CREATE a", "CREATE b;")),
    Migration(2, "two", ("CREATE c",)),
    Migration(3, "three", ("ALTER a",)),
]


class Store:
    """What a database keeps: applied versions, plus one lock."""

    def __init__(self, applied: set[int] | None = None) -> None:
        self.applied = set(applied or ())
        self.lock = asyncio.Lock()


class RecordingEditor(SchemaEditor):
    def __init__(self, store: Store, log: list[str]) -> None:
        self.store, self.log = store, log

    async def applied_versions(self) -> set[int]:
        self.log.append("read")
        await asyncio.sleep(0)  # let a racer interleave
        return set(self.store.applied)

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        async with self.store.lock:
            self.log.append("lock")
            yield
            self.log.append("unlock")

    async def execute(self, statement: str) -> None:
        self.log.append(statement)
        await asyncio.sleep(0)

    async def record(self, migration: Migration) -> None:
        self.store.applied.add(migration.version)
        self.log.append(f"record {migration.version}")

    def script_prologue(self) -> list[str]:
        return ["BEGIN;"]

    def script_record(self, migration: Migration) -> str:
        return f"RECORD {migration.version}"

    def script_epilogue(self) -> list[str]:
        return ["COMMIT;"]


async def test_pending_steps_run_in_order_under_the_lock_each_recorded() -> None:
    log: list[str] = []
    store = Store({1})
    assert await apply_migrations(RecordingEditor(store, log), MIGRATIONS) == [2, 3]
    assert log == ["read", "lock", "read", "CREATE c", "record 2", "ALTER a", "record 3", "unlock"]
    assert store.applied == {1, 2, 3}


async def test_a_current_schema_costs_one_read_and_no_lock() -> None:
    log: list[str] = []
    assert await apply_migrations(RecordingEditor(Store({1, 2, 3}), log), MIGRATIONS) == []
    assert log == ["read"]


async def test_lock_when_current_still_takes_the_lock() -> None:
    log: list[str] = []
    editor = RecordingEditor(Store({1, 2, 3}), log)
    editor.lock_when_current = True
    assert await apply_migrations(editor, MIGRATIONS) == []
    assert log == ["read", "lock", "read", "unlock"]


async def test_a_gap_is_filled() -> None:
    store = Store({1, 3})
    assert await apply_migrations(RecordingEditor(store, []), MIGRATIONS) == [2]


async def test_racers_apply_each_version_once() -> None:
    store = Store()
    logs: list[list[str]] = [[] for _ in range(4)]
    results = await asyncio.gather(
        *(apply_migrations(RecordingEditor(store, log), MIGRATIONS) for log in logs)
    )
    assert sorted(results) == [[], [], [], [1, 2, 3]]
    assert sum(log.count("CREATE c") for log in logs) == 1


async def test_a_newer_schema_is_refused_and_pending_reads_only() -> None:
    log: list[str] = []
    with pytest.raises(SchemaNewerThanDriverError, match="schema version 4 is newer"):
        await apply_migrations(RecordingEditor(Store({1, 2, 3, 4}), log), MIGRATIONS)
    assert "lock" not in log
    log.clear()
    assert await pending_versions(RecordingEditor(Store({1}), log), MIGRATIONS) == [2, 3]
    assert log == ["read"]


def test_versions_must_ascend_from_one() -> None:
    with pytest.raises(ValueError, match="ascending"):
        run_without_loop(pending_versions(RecordingEditor(Store(), []), MIGRATIONS[::-1]))


def test_the_review_script_frames_and_records_every_step() -> None:
    script = migration_script(RecordingEditor(Store(), []), MIGRATIONS, "title")
    assert script.splitlines() == [
        "-- title",
        "BEGIN;",
        "-- migration 1: one",
        "CREATE a;",
        "CREATE b;",
        "RECORD 1;",
        "-- migration 2: two",
        "CREATE c;",
        "RECORD 2;",
        "-- migration 3: three",
        "ALTER a;",
        "RECORD 3;",
        "COMMIT;",
    ]


def test_run_without_loop_refuses_a_coroutine_that_suspends() -> None:
    assert run_without_loop(pending_versions(SyncEditor(), MIGRATIONS)) == [1, 2, 3]
    with pytest.raises(RuntimeError, match="suspended"):
        run_without_loop(apply_migrations(RecordingEditor(Store(), []), MIGRATIONS))


class SyncEditor(RecordingEditor):
    def __init__(self) -> None:
        super().__init__(Store(), [])

    async def applied_versions(self) -> set[int]:
        return set()
