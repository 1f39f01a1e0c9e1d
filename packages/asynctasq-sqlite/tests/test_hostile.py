"""Hostile and fuzzed messages thrown at a real worker process on SQLite: it stays up."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctasq.testing.hostile import (
    HostileProject,
    check_worker_survives,
    fuzz_messages,
    hostile_messages,
)
from asynctasq_sqlite import SqliteDriver

pytestmark = pytest.mark.slow


def project(tmp_path: Path, db_path: Path) -> HostileProject:
    return HostileProject(tmp_path / "app", {"driver": "sqlite", "sqlite": {"path": str(db_path)}})


async def test_hostile_messages_are_dead_lettered_and_the_batch_runs(
    sqlite_driver: SqliteDriver, db_path: Path, tmp_path: Path
) -> None:
    await check_worker_survives(
        sqlite_driver, project(tmp_path, db_path), "hostile", hostile_messages()
    )


@pytest.mark.parametrize("seed", [3, 4])
async def test_fuzzed_messages_never_stop_the_worker(
    sqlite_driver: SqliteDriver, db_path: Path, tmp_path: Path, seed: int
) -> None:
    await check_worker_survives(
        sqlite_driver, project(tmp_path, db_path), "fuzz", fuzz_messages(seed, 150)
    )
