"""Schema creation, versioning, the dequeue index, and clear errors at start-up."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from asynctasq_sqlite import SCHEMA_VERSION, SqliteDriver, SqliteDriverError, sql


async def test_schema_is_created_versioned_and_in_wal_mode(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path))
    await driver.connect()
    await driver.close()
    await driver.connect()  # an existing, current schema is left as it is
    await driver.close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert {"asynctasq_messages", "asynctasq_dead_letters"} <= tables
    assert {"asynctasq_results", "asynctasq_statuses", "asynctasq_logs"} <= tables
    assert "asynctasq_workers" in tables
    conn.close()


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SqliteDriverError, match="newer than this asynctasq-sqlite"):
        await SqliteDriver(path=str(db_path)).connect()


def plan(conn: sqlite3.Connection, query: str, params: tuple[object, ...]) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))


async def test_dequeue_queries_use_the_index_without_sorting(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    select_plan = plan(conn, sql.SELECT_READY, ("q", 0.0, 10))
    assert "USING INDEX asynctasq_messages_dequeue (queue=? AND available_at<?)" in select_plan
    assert "TEMP B-TREE" not in select_plan  # ORDER BY comes from the index
    level_plan = plan(conn, sql.SELECT_READY_AT_LEVEL, ("q", 3, 0.0, 10))
    assert (
        "USING INDEX asynctasq_messages_priority (queue=? AND priority=? AND available_at<?)"
        in level_plan
    )
    assert "TEMP B-TREE" not in level_plan
    next_level = plan(conn, sql.NEXT_LEVEL, ("q", 10))
    assert "USING COVERING INDEX asynctasq_messages_priority (queue=? AND priority>?" in next_level
    assert "TEMP B-TREE" not in next_level  # one seek from the top of the range
    assert "USING COVERING INDEX asynctasq_messages_dequeue" in plan(conn, sql.NEXT_DUE, ("q",))
    assert "INTEGER PRIMARY KEY" in plan(conn, sql.ACK, (1, 2))
    conn.close()


async def test_a_corrupt_file_fails_at_connect_with_a_clear_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database " * 100)  # noqa: ASYNC240  (test set-up)
    driver = SqliteDriver(path=str(db_path))
    with pytest.raises(SqliteDriverError) as caught:
        await driver.connect()
    assert str(caught.value) == (f"cannot open queue database '{db_path}': file is not a database")


async def test_a_missing_directory_fails_at_connect(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "asynctasq.db"
    with pytest.raises(SqliteDriverError) as caught:
        await SqliteDriver(path=str(path)).connect()
    assert str(caught.value).startswith(
        f"cannot open queue database '{path}': unable to open database file"
    )


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make `path` unwritable for this process, even for root (who ignores file modes)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(0o755)
            path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False).returncode:
        pytest.skip("running as root and cannot make a file immutable (chattr +i)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


@pytest.mark.parametrize("existing", [True, False], ids=["with-schema", "empty-file"])
async def test_a_read_only_file_fails_at_connect(db_path: Path, existing: bool) -> None:
    if existing:
        driver = SqliteDriver(path=str(db_path))
        await driver.connect()
        await driver.close()
    else:
        db_path.touch()  # noqa: ASYNC240  (test set-up)
    with read_only(db_path), pytest.raises(SqliteDriverError) as caught:
        await SqliteDriver(path=str(db_path)).connect()
    assert str(caught.value).startswith(
        f"cannot open queue database '{db_path}': attempt to write a readonly database"
    )


async def test_init_schema_reports_what_it_applied(db_path: Path) -> None:
    first = SqliteDriver(path=str(db_path))
    assert await first.init_schema() == list(range(1, SCHEMA_VERSION + 1))
    assert await first.init_schema() == []
    await first.close()
    second = SqliteDriver(path=str(db_path))
    assert await second.init_schema() == []
    await second.close()


async def test_migration_sql_builds_the_same_schema(tmp_path: Path) -> None:
    by_driver, by_script = tmp_path / "driver.db", tmp_path / "script.db"
    driver = SqliteDriver(path=str(by_driver))
    await driver.connect()
    await driver.close()
    conn = sqlite3.connect(by_script)
    conn.executescript(driver.migration_sql())
    conn.close()

    def schema_of(path: Path) -> list[tuple[str, str]]:
        conn = sqlite3.connect(path)
        rows = conn.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()
        conn.close()
        return [*rows, version]

    assert schema_of(by_script) == schema_of(by_driver)


async def test_a_version_1_file_is_upgraded_in_place(db_path: Path) -> None:
    from asynctasq.drivers.base import OutgoingMessage
    from asynctasq_sqlite.schema import _CREATE_V1

    conn = sqlite3.connect(db_path)
    for statement in _CREATE_V1:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    old = SqliteDriver(path=str(db_path))
    await old.enqueue(OutgoingMessage("kept", "q", b"{}"))  # connect() upgrades the file
    await old.close()
    driver = SqliteDriver(path=str(db_path))
    try:
        assert await driver.init_schema() == []
        [delivery] = await driver.dequeue(["q"], limit=1, wait=0)
        assert delivery.task_id == "kept"
        await driver.store_result("kept", b"42", 60)  # the version 2 table is there
        assert await driver.fetch_result("kept", 0) == b"42"
    finally:
        await driver.close()


async def test_a_version_2_file_is_upgraded_in_place(db_path: Path) -> None:
    from asynctasq.drivers.base import OutgoingMessage, StatusWrite
    from asynctasq_sqlite.schema import _CREATE_V1, _CREATE_V2

    conn = sqlite3.connect(db_path)
    for statement in (*_CREATE_V1, *_CREATE_V2):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO asynctasq_results (task_id, result, expires_at) VALUES ('t', x'3432', ?)",
        (time.time() + 60,),
    )
    conn.commit()
    conn.close()
    old = SqliteDriver(path=str(db_path))
    assert await old.init_schema() == [3, 4, 5]
    await old.enqueue(OutgoingMessage("kept", "q", b"{}"))
    await old.close()
    driver = SqliteDriver(path=str(db_path))
    try:
        assert await driver.init_schema() == []
        assert await driver.fetch_result("t", 0) == b"42"  # version 2 rows are kept
        [delivery] = await driver.dequeue(["q"], limit=1, wait=0)
        assert delivery.task_id == "kept"
        await driver.write_statuses([StatusWrite("kept", "q", "running", b"{}", 60)])
        assert await driver.read_status("kept") == b"{}"  # the version 3 tables are there
        await driver.append_log("events", [b"e"], 60)
        assert (await driver.read_log("events", None, wait=0))[0] == [b"e"]
        await driver.heartbeat_worker("w", b"w", 60)
        assert await driver.list_workers() == [b"w"]
    finally:
        await driver.close()


async def test_a_version_3_file_is_upgraded_in_place(db_path: Path) -> None:
    from asynctasq.drivers.base import OutgoingMessage
    from asynctasq_sqlite.schema import _CREATE_V1, _CREATE_V2, _CREATE_V3

    conn = sqlite3.connect(db_path)
    for statement in (*_CREATE_V1, *_CREATE_V2, *_CREATE_V3):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO asynctasq_statuses (task_id, queue, state, record, expires_at) "
        "VALUES ('t', 'q', 'queued', x'7b7d', ?)",
        (time.time() + 60,),
    )
    conn.commit()
    conn.close()
    old = SqliteDriver(path=str(db_path))
    assert await old.init_schema() == [4, 5]
    await old.enqueue(OutgoingMessage("kept", "q", b"{}"))
    await old.close()
    driver = SqliteDriver(path=str(db_path))
    try:
        assert await driver.init_schema() == []
        assert await driver.read_status("t") == b"{}"  # version 3 rows are kept
        [delivery] = await driver.dequeue(["q"], limit=1, wait=0)
        assert delivery.task_id == "kept"
        assert await driver.claim("schedule:s:1", "w1", 60) is None  # the claims table
        assert await driver.read_claim("schedule:s:1") == "w1"
    finally:
        await driver.close()
