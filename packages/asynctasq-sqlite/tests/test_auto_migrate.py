"""``auto_migrate`` (on by default): connecting creates or upgrades the schema; off, a file
without the current schema raises core's `SchemaNotInitializedError`, naming both fixes."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq.errors import SchemaNotInitializedError
from asynctasq_sqlite import SCHEMA_VERSION, SqliteDriver


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        return int(version)
    finally:
        conn.close()


async def test_without_it_a_new_file_is_refused_until_migrated(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    driver = SqliteDriver(path=str(path), auto_migrate=False)
    with pytest.raises(SchemaNotInitializedError) as caught:
        await driver.connect()
    text = str(caught.value)
    assert repr(str(path)) in text
    assert "`asynctasq migrate`" in text and "auto_migrate=True" in text
    assert _version(path) == 0  # nothing was created
    assert await driver.init_schema() == list(range(1, SCHEMA_VERSION + 1))
    assert await driver.init_schema() == []
    await driver.close()
    worker = SqliteDriver(path=str(path), auto_migrate=False)  # current now: it connects
    try:
        await worker.enqueue(OutgoingMessage(task_id=str(uuid.uuid4()), queue="q", payload=b"x"))
        assert len(await worker.dequeue(["q"], limit=1, wait=0)) == 1
    finally:
        await worker.close()


async def test_by_default_connecting_creates_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    driver = SqliteDriver(path=str(path))
    await driver.connect()
    await driver.close()
    assert _version(path) == SCHEMA_VERSION
