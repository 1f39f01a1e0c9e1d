"""Task statuses, logs and worker records beyond the conformance suite: append ordering,
waiting, expiry and trimming, escaping, the query plans and the migration."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from asynctasq.drivers.base import EventLog, StatusStore, StatusWrite, WorkerRegistry
from asynctasq.drivers.sql import InvalidIdentifierError
from asynctasq_mysql import MySQLDriver
from asynctasq_mysql.lifecycle import LOG_POLL_MAX, TRIM_BATCH, _row, _statements
from asynctasq_mysql.schema import TableNames


def write(task_id: str, state: str = "queued", queue: str = "q", ttl: float = 60) -> StatusWrite:
    return StatusWrite(task_id, queue, state, f'{{"{task_id}":"{state}"}}'.encode(), ttl)


async def count(admin: Any, table: str) -> int:
    async with admin.cursor() as cursor:
        await cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
        (n,) = await cursor.fetchone()
        return int(n)


def test_the_driver_has_the_lifecycle_capabilities() -> None:
    driver = MySQLDriver()
    assert isinstance(driver, StatusStore)
    assert isinstance(driver, EventLog)
    assert isinstance(driver, WorkerRegistry)


def test_lifecycle_tables_are_named_after_the_queue_table() -> None:
    tables = TableNames.build("jobs", "jobs_dead")
    assert (tables.statuses, tables.logs, tables.log_heads, tables.workers) == (
        "`jobs_statuses`",
        "`jobs_logs`",
        "`jobs_log_heads`",
        "`jobs_workers`",
    )
    long = TableNames.build("q" * 60, "dead", "migrations")
    for name in (long.results, long.statuses, long.logs, long.log_heads, long.workers):
        assert len(name.strip("`")) <= 64
    assert len({long.results, long.statuses, long.logs, long.log_heads, long.workers}) == 5
    with pytest.raises(InvalidIdentifierError, match="must differ"):
        TableNames.build("jobs", "jobs_logs")  # would be the log table


async def test_a_batch_keeps_the_last_write_of_each_task_in_its_position(
    driver: MySQLDriver,
) -> None:
    await driver.write_statuses(
        [write("a", "queued"), write("b", "queued"), write("a", "running"), write("c")]
    )
    assert await driver.read_status("a") == b'{"a":"running"}'
    assert await driver.list_statuses() == [
        b'{"c":"queued"}',
        b'{"a":"running"}',
        b'{"b":"queued"}',
    ]
    assert await driver.list_statuses(limit=0) == []
    await driver.write_statuses([])  # nothing to do, no error


async def test_records_and_entries_keep_every_byte(
    driver: MySQLDriver, connect_raw: Callable[..., Any]
) -> None:
    odd = bytes(range(256)) + b"\\' '' \\\\ \x00" + b"x" * (1 << 20)
    await driver.write_statuses([StatusWrite("t", "q'\\", "st\\'", odd, 60)])
    assert await driver.read_status("t") == odd
    assert await driver.list_statuses(queue="q'\\", state="st\\'") == [odd]
    await driver.append_log("l'\\", [odd, b""], 60)
    assert (await driver.read_log("l'\\", None, wait=0))[0] == [odd, b""]
    await driver.heartbeat_worker("w'\\", odd, 60)
    assert await driver.list_workers() == [odd]
    # The same statements built on a connection in NO_BACKSLASH_ESCAPES mode.
    conn = await connect_raw(sql_mode="NO_BACKSLASH_ESCAPES")
    try:
        row = _row(conn, ("t2", "q", "queued"), odd, 60)
        [statement] = _statements(driver._lifecycle_sql.replace_status_prefix, [row], 1 << 26)
        async with conn.cursor() as cursor:
            await cursor.execute(statement)
    finally:
        conn.close()
    assert await driver.read_status("t2") == odd


async def test_an_endless_ttl_is_stored(driver: MySQLDriver) -> None:
    await driver.write_statuses([write("t", ttl=float("inf"))])
    await driver.append_log("l", [b"e"], float("inf"))
    await driver.heartbeat_worker("w", b"w", 1e12)
    assert await driver.read_status("t") == b'{"t":"queued"}'
    assert (await driver.read_log("l", None, wait=0))[0] == [b"e"]
    assert await driver.list_workers() == [b"w"]


async def test_an_append_waits_for_an_earlier_append_to_the_same_log_to_commit(
    driver: MySQLDriver, admin: Any, table_names: dict[str, str]
) -> None:
    """Ids are handed out at insert time: without the lock, a later id could commit first
    and a reader's cursor would pass the earlier one for good."""
    heads = f"{table_names['queue']}_log_heads"
    await driver.append_log("events", [b"first"], 60)
    async with admin.cursor() as cursor:
        await cursor.execute("BEGIN")
        await cursor.execute(f"UPDATE `{heads}` SET `appends` = `appends` WHERE `log` = 'events'")
        appending = asyncio.create_task(driver.append_log("events", [b"second"], 60))
        other_log = asyncio.create_task(driver.append_log("cancels", [b"x"], 60))
        await asyncio.wait_for(other_log, 5)  # other logs are not held up
        await asyncio.sleep(0.5)
        assert not appending.done()
        await cursor.execute("COMMIT")
    await asyncio.wait_for(appending, 5)
    entries, _ = await driver.read_log("events", None, wait=0)
    assert entries == [b"first", b"second"]


async def test_concurrent_appenders_lose_nothing_for_a_following_reader(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    writers = [make_driver(max_pool_size=2) for _ in range(4)]
    reader = make_driver()
    seen: list[bytes] = []
    done = asyncio.Event()

    async def follow(cursor: str) -> None:
        while not done.is_set() or cursor != await reader.log_tail("events"):
            entries, cursor = await reader.read_log("events", cursor, wait=0.05, limit=7)
            seen.extend(entries)

    async def append(name: str, driver: MySQLDriver) -> None:
        for i in range(60):
            await driver.append_log("events", [f"{name}-{i}".encode()], 60)

    # The tail is taken before any append: the reader's first call connects and migrates,
    # which on a busy host can outlast a sleep, and entries appended before the tail are
    # rightly not read.
    following = asyncio.create_task(follow(await reader.log_tail("events")))
    names = [f"{n}.{k}" for n in range(4) for k in range(2)]
    await asyncio.gather(*(append(name, writers[int(name[0])]) for name in names))
    done.set()
    await asyncio.wait_for(following, 30)
    everything = {f"{name}-{i}".encode() for name in names for i in range(60)}
    assert sorted(everything - set(seen)) == []
    assert len(seen) == len(set(seen)) == len(names) * 60
    for name in names:  # each appender's entries in the order it made them
        mine = [e for e in seen if e.startswith(f"{name}-".encode())]
        assert mine == [f"{name}-{i}".encode() for i in range(60)]


async def test_expired_rows_are_deleted_by_later_writes(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    first = make_driver()
    await first.write_statuses([write("old", ttl=0.05)])
    await first.append_log("events", [b"old"], 0.05)
    await first.heartbeat_worker("gone", b"gone", 0.05)
    await asyncio.sleep(0.2)
    second = make_driver()  # its own trim schedule: due at its first write
    await second.write_statuses([write("new")])
    await second.append_log("events", [b"new"], 60)
    await second.heartbeat_worker("here", b"here", 60)
    q = table_names["queue"]
    assert [await count(admin, f"{q}_{t}") for t in ("statuses", "logs", "workers")] == [1, 1, 1]


async def test_a_backlog_of_expired_rows_is_deleted_over_the_next_writes(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    first = make_driver()
    await first.write_statuses([write(f"old-{n}", ttl=0.05) for n in range(TRIM_BATCH + 100)])
    await asyncio.sleep(0.2)
    second = make_driver()
    statuses = f"{table_names['queue']}_statuses"
    await second.write_statuses([write("new")])
    assert await count(admin, statuses) == 101  # one bounded batch
    await second.write_statuses([write("newer")])  # the batch was full: trims again at once
    assert await count(admin, statuses) == 2
    await second.write_statuses([write("newest")])  # no backlog: not before TRIM_INTERVAL
    assert await second.list_statuses() == [
        b'{"newest":"queued"}',
        b'{"newer":"queued"}',
        b'{"new":"queued"}',
    ]


async def test_a_failed_trim_does_not_fail_the_write(
    driver: MySQLDriver, caplog: pytest.LogCaptureFixture
) -> None:
    sql = driver._lifecycle_sql
    sql.trims[sql.logs] = "DELETE FROM `no_such_table_for_trim` LIMIT 1"
    with caplog.at_level(logging.WARNING, logger="asynctasq_mysql"):
        await driver.append_log("events", [b"kept"], 60)
    assert (await driver.read_log("events", None, wait=0))[0] == [b"kept"]
    assert "deleting expired rows" in caplog.text


async def test_an_append_through_this_driver_wakes_a_reader_at_once(driver: MySQLDriver) -> None:
    tail = await driver.log_tail("events")
    waiting = asyncio.create_task(driver.read_log("events", tail, wait=10))
    await asyncio.sleep(1.0)  # the reader's backoff is at its longest pause by now
    sent_at = time.monotonic()
    await driver.append_log("events", [b"hello"], 60)
    entries, _ = await asyncio.wait_for(waiting, 5)
    assert entries == [b"hello"]
    assert time.monotonic() - sent_at < LOG_POLL_MAX / 2


async def test_another_process_append_is_seen_within_the_poll_interval(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    reader, writer = make_driver(), make_driver()  # no shared wake-up: the reader polls
    tail = await reader.log_tail("cancels")
    waiting = asyncio.create_task(reader.read_log("cancels", tail, wait=10))
    await asyncio.sleep(1.0)
    sent_at = time.monotonic()
    await writer.append_log("cancels", [b"task-1"], 60)
    entries, _ = await asyncio.wait_for(waiting, 5)
    assert entries == [b"task-1"]
    assert time.monotonic() - sent_at < LOG_POLL_MAX + 0.5  # slack for a loaded host


async def test_a_waiting_reader_returns_empty_on_time(driver: MySQLDriver) -> None:
    started = time.monotonic()
    assert await driver.read_log("events", None, wait=0.5) == ([], "0")
    assert 0.49 <= time.monotonic() - started < 1.0


async def test_close_ends_a_waiting_reader(driver: MySQLDriver) -> None:
    waiting = asyncio.create_task(driver.read_log("events", "5", wait=10))
    await asyncio.sleep(0.3)
    await driver.close()
    assert await asyncio.wait_for(waiting, 2) == ([], "5")


async def test_bad_cursors_and_limits_are_refused(driver: MySQLDriver) -> None:
    with pytest.raises(ValueError, match="not a log cursor"):
        await driver.read_log("events", "1700000000000-0", wait=0)
    with pytest.raises(ValueError, match="limit"):
        await driver.read_log("events", None, wait=0, limit=0)


async def test_the_tail_of_an_empty_log_reads_everything_appended_later(
    driver: MySQLDriver,
) -> None:
    await driver.append_log("other", [b"x"], 60)
    tail = await driver.log_tail("events")
    assert tail == "0"
    await driver.append_log("events", [b"a"], 60)
    assert (await driver.read_log("events", tail, wait=0))[0] == [b"a"]


async def test_workers_are_listed_by_id_and_replaced_on_heartbeat(driver: MySQLDriver) -> None:
    for worker_id in ("b", "a", "c"):
        await driver.heartbeat_worker(worker_id, worker_id.encode() + b"1", 60)
    await driver.heartbeat_worker("b", b"b2", 60)
    assert await driver.list_workers() == [b"a1", b"b2", b"c1"]
    await driver.remove_worker("b")
    await driver.remove_worker("never-there")
    assert await driver.list_workers() == [b"a1", b"c1"]


async def explain(admin: Any, query: str, params: tuple[Any, ...]) -> dict[str, Any]:
    async with admin.cursor() as cursor:
        await cursor.execute("EXPLAIN " + query, params)
        columns = [d[0].lower() for d in cursor.description]
        [plan] = [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]
    return plan


async def test_lifecycle_queries_use_their_indexes(
    driver: MySQLDriver, admin: Any, table_names: dict[str, str]
) -> None:
    await driver.write_statuses(
        [write(str(uuid.uuid4()), f"s{n % 4}", f"q{n % 5}") for n in range(400)] + [write("t")]
    )
    for n in range(20):
        await driver.append_log(f"log{n % 4}", [b"e"] * 20, 60)
    async with admin.cursor() as cursor:
        for table in ("statuses", "logs"):
            await cursor.execute(f"ANALYZE TABLE `{table_names['queue']}_{table}`")
            await cursor.fetchall()
    sql = driver._lifecycle_sql
    both = await explain(admin, sql.list_statuses(queue=True, state=True), ("q1", "s1", 10))
    assert both["key"] == "ix_queue_state", both
    assert "filesort" not in (both.get("extra") or "").lower(), both
    by_state = await explain(admin, sql.list_statuses(queue=False, state=True), ("s1", 10))
    assert by_state["key"] == "ix_state", by_state
    assert "filesort" not in (by_state.get("extra") or "").lower(), by_state
    read = await explain(admin, sql.read_log, (1024, "log1", 0, 10))
    assert read["key"] in ("ix_log", "PRIMARY"), read
    assert "filesort" not in (read.get("extra") or "").lower(), read
    tail = await explain(admin, sql.log_tail, ("log1",))
    assert tail["key"] == "ix_log" or "select tables optimized away" in tail["extra"].lower()
    assert (await explain(admin, sql.read_status, ("t",)))["key"] == "ux_task_id"


async def test_a_schema_at_version_2_is_upgraded_in_place(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    driver = make_driver(auto_migrate=False)
    assert await driver.init_schema() == [1, 2, 3, 4, 5]
    await driver.store_result("kept", b"42", 60)
    q = table_names["queue"]
    async with admin.cursor() as cursor:  # back to what version 2 left
        await cursor.execute("SET SESSION sql_notes = 0")
        for table in ("statuses", "logs", "log_heads", "workers"):
            await cursor.execute(f"DROP TABLE `{q}_{table}`")
        await cursor.execute(f"DROP TABLE `{q}_claims`")
        await cursor.execute(f"DELETE FROM `{table_names['migrations']}` WHERE `version` IN (3, 4)")
    await driver.close()
    upgraded = make_driver(auto_migrate=False)
    assert await upgraded.init_schema() == [3, 4]
    assert await upgraded.fetch_result("kept", 0) == b"42"
    await upgraded.write_statuses([write("t")])
    assert await upgraded.read_status("t") == b'{"t":"queued"}'
    await upgraded.append_log("events", [b"e"], 60)
    assert (await upgraded.read_log("events", None, wait=0))[0] == [b"e"]
