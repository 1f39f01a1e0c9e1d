"""Task statuses, logs and worker records beyond the conformance suite: storage, waiting
across processes, expiry and the query plans."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from asynctasq.drivers.base import EventLog, StatusStore, StatusWrite, WorkerRegistry
from asynctasq.drivers.sql.polled_logs import LOG_POLL_MAX
from asynctasq_sqlite import SqliteDriver, sql


def write(task_id: str, state: str = "queued", queue: str = "q", ttl: float = 60) -> StatusWrite:
    return StatusWrite(task_id, queue, state, f'{{"{task_id}":"{state}"}}'.encode(), ttl)


def raw(path: Path) -> sqlite3.Connection:
    """A connection of its own, as another process has: no in-process wake-ups."""
    return sqlite3.connect(path, isolation_level=None, timeout=5)


def test_the_driver_has_the_lifecycle_capabilities() -> None:
    driver = SqliteDriver()
    assert isinstance(driver, StatusStore)
    assert isinstance(driver, EventLog)
    assert isinstance(driver, WorkerRegistry)


async def test_a_batch_keeps_the_last_write_of_each_task_in_its_position(
    sqlite_driver: SqliteDriver,
) -> None:
    await sqlite_driver.write_statuses(
        [write("a", "queued"), write("b", "queued"), write("a", "running"), write("c")]
    )
    assert await sqlite_driver.read_status("a") == b'{"a":"running"}'
    assert await sqlite_driver.list_statuses() == [
        b'{"c":"queued"}',
        b'{"a":"running"}',
        b'{"b":"queued"}',
    ]
    await sqlite_driver.write_statuses([])  # nothing to do, no error


async def test_status_limits_and_filters(sqlite_driver: SqliteDriver) -> None:
    await sqlite_driver.write_statuses([write(str(n), queue=f"q{n % 2}") for n in range(6)])
    assert len(await sqlite_driver.list_statuses(limit=4)) == 4
    assert await sqlite_driver.list_statuses(limit=0) == []
    assert await sqlite_driver.list_statuses(queue="q1", state="queued") == [
        b'{"5":"queued"}',
        b'{"3":"queued"}',
        b'{"1":"queued"}',
    ]
    assert await sqlite_driver.list_statuses(queue="nope") == []


async def test_expired_rows_are_deleted_by_later_writes(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    await sqlite_driver.write_statuses([write("old", ttl=0.05)])
    await sqlite_driver.append_log("events", [b"old"], 0.05)
    await sqlite_driver.heartbeat_worker("gone", b"gone", 0.05)
    await asyncio.sleep(0.1)
    await sqlite_driver.write_statuses([write("new")])
    await sqlite_driver.append_log("events", [b"new"], 60)
    await sqlite_driver.heartbeat_worker("here", b"here", 60)
    conn = raw(db_path)
    assert conn.execute("SELECT task_id FROM asynctasq_statuses").fetchall() == [("new",)]
    assert conn.execute("SELECT entry FROM asynctasq_logs").fetchall() == [(b"new",)]
    assert conn.execute("SELECT worker_id FROM asynctasq_workers").fetchall() == [("here",)]
    conn.close()


async def test_a_write_deletes_a_bounded_batch_of_expired_records(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    many = sql.TRIM_BATCH + 100
    await sqlite_driver.write_statuses([write(f"old-{n}", ttl=0.05) for n in range(many)])
    await asyncio.sleep(0.1)
    await sqlite_driver.write_statuses([write("new")])
    conn = raw(db_path)
    assert conn.execute("SELECT count(*) FROM asynctasq_statuses").fetchone() == (101,)
    conn.close()
    await sqlite_driver.write_statuses([write("newer")])
    assert await sqlite_driver.list_statuses() == [b'{"newer":"queued"}', b'{"new":"queued"}']


async def test_log_ids_are_never_reused_after_every_entry_expired(
    sqlite_driver: SqliteDriver,
) -> None:
    await sqlite_driver.append_log("events", [b"first"], 0.05)
    entries, cursor = await sqlite_driver.read_log("events", None, wait=0)
    assert entries == [b"first"]
    await asyncio.sleep(0.1)
    # This append deletes "first" before inserting: the table is empty at that moment.
    await sqlite_driver.append_log("events", [b"second"], 60)
    entries, _ = await sqlite_driver.read_log("events", cursor, wait=0)
    assert entries == [b"second"]


async def test_the_tail_of_an_empty_log_reads_everything_appended_later(
    sqlite_driver: SqliteDriver,
) -> None:
    await sqlite_driver.append_log("other", [b"x"], 60)
    tail = await sqlite_driver.log_tail("events")
    assert tail == "0"
    await sqlite_driver.append_log("events", [b"a"], 60)
    assert await sqlite_driver.read_log("events", tail, wait=0) == ([b"a"], "2")


async def test_bad_cursors_and_limits_are_refused(sqlite_driver: SqliteDriver) -> None:
    with pytest.raises(ValueError, match="not a log cursor"):
        await sqlite_driver.read_log("events", "1700000000000-0", wait=0)
    with pytest.raises(ValueError, match="limit"):
        await sqlite_driver.read_log("events", None, wait=0, limit=0)


async def test_an_append_in_this_process_wakes_a_reader_at_once(db_path: Path) -> None:
    reader, writer = SqliteDriver(path=str(db_path)), SqliteDriver(path=str(db_path))
    try:
        tail = await reader.log_tail("events")
        waiting = asyncio.create_task(reader.read_log("events", tail, wait=10))
        await asyncio.sleep(1.0)  # the reader's backoff is at its longest pause by now
        sent_at = time.monotonic()
        await writer.append_log("events", [b"hello"], 60)
        entries, _ = await asyncio.wait_for(waiting, 5)
        assert entries == [b"hello"]
        assert time.monotonic() - sent_at < LOG_POLL_MAX / 2
    finally:
        await reader.close()
        await writer.close()


async def test_another_process_append_is_seen_within_the_poll_interval(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    tail = await sqlite_driver.log_tail("cancels")
    waiting = asyncio.create_task(sqlite_driver.read_log("cancels", tail, wait=10))
    await asyncio.sleep(1.0)
    sent_at = time.monotonic()
    conn = raw(db_path)
    conn.execute(
        "INSERT INTO asynctasq_logs (log, entry, expires_at) VALUES (?, ?, ?)",
        ("cancels", b"task-1", time.time() + 60),
    )
    conn.close()
    entries, _ = await asyncio.wait_for(waiting, 5)
    assert entries == [b"task-1"]
    assert time.monotonic() - sent_at < LOG_POLL_MAX + 0.5  # slack for a loaded host


async def test_a_waiting_reader_returns_empty_on_time(sqlite_driver: SqliteDriver) -> None:
    started = time.monotonic()
    assert await sqlite_driver.read_log("events", None, wait=0.5) == ([], "0")
    assert 0.49 <= time.monotonic() - started < 0.9


async def test_close_ends_a_waiting_reader(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path))
    waiting = asyncio.create_task(driver.read_log("events", None, wait=10))
    await asyncio.sleep(0.3)
    await driver.close()
    assert await asyncio.wait_for(waiting, 2) == ([], "0")


async def test_workers_are_listed_by_id_and_replaced_on_heartbeat(
    sqlite_driver: SqliteDriver,
) -> None:
    for worker_id in ("b", "a", "c"):
        await sqlite_driver.heartbeat_worker(worker_id, worker_id.encode() + b"1", 60)
    await sqlite_driver.heartbeat_worker("b", b"b2", 60)
    assert await sqlite_driver.list_workers() == [b"a1", b"b2", b"c1"]
    await sqlite_driver.remove_worker("b")
    await sqlite_driver.remove_worker("never-there")
    assert await sqlite_driver.list_workers() == [b"a1", b"c1"]


def plan(
    conn: sqlite3.Connection, query: str, params: tuple[object, ...] | dict[str, object]
) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))


async def test_lifecycle_queries_use_their_indexes(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    conn = raw(db_path)
    both = plan(
        conn,
        sql.list_statuses(queue=True, state=True),
        {"now": 0.0, "queue": "q", "state": "queued", "limit": 10},
    )
    assert "USING INDEX asynctasq_statuses_queue (queue=? AND state=?)" in both
    assert "TEMP B-TREE" not in both  # newest first comes from the index
    by_state = plan(
        conn, sql.list_statuses(queue=False, state=True), {"now": 0.0, "state": "x", "limit": 1}
    )
    assert "USING INDEX asynctasq_statuses_state (state=?)" in by_state
    assert "TEMP B-TREE" not in by_state
    read = plan(conn, sql.READ_LOG, (1024, "events", 0, 0.0, 10))
    assert "USING INDEX asynctasq_logs_log (log=? AND id>?)" in read
    assert "TEMP B-TREE" not in read
    assert "COVERING INDEX asynctasq_logs_log (log=?)" in plan(conn, sql.LOG_TAIL, ("events",))
    assert "asynctasq_statuses_expiry (expires_at<?)" in plan(conn, sql.TRIM_STATUSES, (0.0,))
    assert "asynctasq_logs_expiry (expires_at<?)" in plan(conn, sql.TRIM_LOGS, (0.0,))
    assert "sqlite_autoindex_asynctasq_statuses_1 (task_id=?)" in plan(
        conn, sql.SELECT_STATUS, ("t", 0.0)
    )
    conn.close()


async def test_lifecycle_rows_are_shared_by_drivers_on_one_file(db_path: Path) -> None:
    first, second = SqliteDriver(path=str(db_path)), SqliteDriver(path=str(db_path))
    try:
        task_id = str(uuid.uuid4())
        await first.write_statuses([write(task_id, "running")])
        await first.append_log("events", [b"e"], 60)
        await first.heartbeat_worker("w", b"w", 60)
        assert await second.read_status(task_id) == f'{{"{task_id}":"running"}}'.encode()
        assert (await second.read_log("events", None, wait=0))[0] == [b"e"]
        assert await second.list_workers() == [b"w"]
    finally:
        await first.close()
        await second.close()
