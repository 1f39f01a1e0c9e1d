"""Shared fixtures: every test gets its own database file under tmp_path."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asynctasq_sqlite import SqliteDriver


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short temporary directory instead of pytest's: the bell's UNIX sockets live in
    ``<db>-bell/`` and their paths must fit in 107 bytes, which an xdist worker's deep
    ``tmp_path`` (``.../pytest-N/popen-gwK/<test name>0/``) does not leave room for."""
    with tempfile.TemporaryDirectory(prefix="atq-") as directory:
        yield Path(directory)


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
