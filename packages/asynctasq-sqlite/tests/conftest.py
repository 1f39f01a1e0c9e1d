"""Shared fixtures: every test gets its own database file under tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctasq_sqlite import SqliteDriver


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database file path no other test uses (not created yet)."""
    return tmp_path / "queue.db"


@pytest.fixture
async def sqlite_driver(db_path: Path) -> AsyncIterator[SqliteDriver]:
    """A connected driver on its own file, closed after the test."""
    driver = SqliteDriver(path=str(db_path))
    await driver.connect()
    yield driver
    await driver.close()
