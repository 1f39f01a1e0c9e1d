"""Rows written behind the driver's back (anyone who can write to the file can, and the tables
are not STRICT, so a column keeps a value of any type): a malformed message is
dead-lettered, never handed out, and no such row fails a dequeue, a settle or a listing."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynctasq.drivers.base import Failure, OutgoingMessage
from asynctasq_sqlite import SqliteDriver

MALFORMED = "asynctasq.errors.MalformedMessageError"


def msg(queue: str = "q") -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, b"{}", visibility_timeout=60.0)


@pytest.fixture
def raw(sqlite_driver: SqliteDriver, db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the test's file (the driver has created the schema)."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    yield conn
    conn.close()


def insert(conn: sqlite3.Connection, **columns: object) -> None:
    """A message row, ready a second ago, with `columns` (SQL expressions) replaced."""
    now = time.time() - 1
    row: dict[str, object] = {
        "task_id": f"'{uuid.uuid4()}'",
        "queue": "'q'",
        "payload": "x'7b7d'",
        "visibility_timeout": 30,
        "attempts": 0,
        "available_at": now,
        "enqueued_at": now,
    } | columns
    names, values = ", ".join(row), ", ".join(str(v) for v in row.values())
    conn.execute(f"INSERT INTO asynctasq_messages ({names}) VALUES ({values})")


# Each would have been handed out as it is (and failed in the worker before being settled,
# then been due again at once), or failed the whole dequeue (text that is not UTF-8).
MALFORMED_ROWS: dict[str, dict[str, object]] = {
    "vt-text": {"visibility_timeout": "'abc'"},
    "vt-zero": {"visibility_timeout": 0},
    "vt-negative": {"visibility_timeout": -5},
    "vt-blob": {"visibility_timeout": "x'00'"},
    "attempts-text": {"attempts": "'zz'"},
    "attempts-real": {"attempts": 1.5},
    "attempts-negative": {"attempts": -1},
    "attempts-blob": {"attempts": "x'01'"},
}


async def test_rows_of_the_wrong_types_are_dead_lettered_and_their_batch_delivered(
    sqlite_driver: SqliteDriver, raw: sqlite3.Connection
) -> None:
    d = sqlite_driver
    good = [msg(), msg()]
    await d.enqueue(good[0])
    for task_id, columns in MALFORMED_ROWS.items():
        insert(raw, task_id=f"'{task_id}'", **columns)
    insert(raw, task_id="CAST(x'fffe' AS TEXT)")  # not UTF-8: sqlite3 could not read it
    insert(raw, task_id="x'ff'")  # a BLOB id
    # a payload of another type is bytes all the same (the worker judges the bytes)
    insert(raw, task_id="'text-payload'", payload="'{}'")
    insert(raw, task_id="'int-payload'", payload=10**12)  # bytes(10**12) would be a TB
    insert(raw, task_id="'bad-text-payload'", payload="CAST(x'ff' AS TEXT)")
    await d.enqueue(good[1])

    got = await d.dequeue(["q"], limit=100, wait=0)
    assert [x.task_id for x in got] == [
        "text-payload",
        "int-payload",
        "bad-text-payload",
        good[0].task_id,  # enqueued "now": after the rows made ready a second ago
        good[1].task_id,
    ]
    assert [x.payload for x in got] == [b"{}", b"1000000000000", b"\xff", b"{}", b"{}"]
    for x in got:
        assert (type(x.attempts), type(x.visibility_timeout)) == (int, float)

    dead = {x.task_id: x for x in await d.list_dead_letters(limit=100)}
    assert set(dead) == {*MALFORMED_ROWS, "\ufffd\ufffd", "\ufffd"}
    assert {x.failure.exception_type for x in dead.values()} == {MALFORMED}
    assert "visibility_timeout is not a positive number" in dead["vt-text"].failure.message
    assert "attempts is not a count" in dead["attempts-text"].failure.message
    assert "task_id is not UTF-8 text" in dead["\ufffd\ufffd"].failure.message
    # repaired as far as it can be: a retry puts back a message the driver can hand out
    assert (dead["vt-text"].attempts, dead["attempts-text"].attempts) == (0, 0)
    [stats] = await d.stats(["q"])
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 5, 10)
    assert await d.retry_dead_letters(task_ids=["vt-text", "attempts-text"]) == 2
    again = await d.dequeue(["q"], limit=100, wait=0)
    assert sorted((x.task_id, x.attempts) for x in again) == [
        ("attempts-text", 0),
        ("vt-text", 0),
    ]
    assert {x.visibility_timeout for x in again} == {30.0, 3600.0}


async def test_a_waiting_dequeue_looks_again_after_a_batch_of_only_malformed_rows(
    sqlite_driver: SqliteDriver, raw: sqlite3.Connection
) -> None:
    for _ in range(3):
        insert(raw, visibility_timeout="'abc'")
    await sqlite_driver.enqueue(good := msg())
    # the first take buries the three and takes nothing; the dequeue looks again at once
    # (nothing wakes it otherwise: the good message was enqueued before it started)
    started = time.monotonic()
    got = await sqlite_driver.dequeue(["q"], limit=3, wait=5.0)
    assert [x.task_id for x in got] == [good.task_id]
    assert time.monotonic() - started < 1.0


async def test_rows_without_a_due_time_are_dead_lettered_not_failed_on(
    sqlite_driver: SqliteDriver, raw: sqlite3.Connection
) -> None:
    insert(raw, task_id="'never'", queue="'lost'", available_at="'soon'")
    insert(raw, task_id="'blob'", queue="'lost'", available_at="x'00'")
    # the only rows of their queue: the queue's next due time is not a number
    assert await sqlite_driver.dequeue(["q", "lost"], limit=5, wait=0) == []
    dead = await sqlite_driver.list_dead_letters(queue="lost")
    assert sorted(x.task_id for x in dead) == ["blob", "never"]
    assert all("available_at is not a time" in x.failure.message for x in dead)
    await sqlite_driver.enqueue(good := msg("lost"))
    assert [x.task_id for x in await sqlite_driver.dequeue(["lost"], limit=5, wait=1)] == [
        good.task_id
    ]


async def test_settling_a_row_changed_behind_the_driver_does_not_fail(
    sqlite_driver: SqliteDriver, raw: sqlite3.Connection
) -> None:
    d = sqlite_driver
    await d.enqueue_many([msg(), msg()])
    first, second = await d.dequeue(["q"], limit=2, wait=0)
    raw.execute(
        "UPDATE asynctasq_messages SET task_id = CAST(x'ff' AS TEXT), attempts = 'x', "
        "visibility_timeout = 'y', payload = 7"
    )
    await d.dead_letter(first, Failure("E", "m", "t"))
    await d.release([second])
    [dead] = await d.list_dead_letters()
    assert (dead.task_id, dead.payload, dead.attempts) == ("\ufffd", b"7", 0)
    assert dead.failure == Failure("E", "m", "t")
    # the one given back is malformed now: dead-lettered at the next dequeue
    assert await d.dequeue(["q"], limit=2, wait=0) == []
    assert len(await d.list_dead_letters()) == 2


async def test_forged_dead_letters_and_queue_names_do_not_fail_the_listings(
    sqlite_driver: SqliteDriver, raw: sqlite3.Connection
) -> None:
    d = sqlite_driver
    await d.enqueue(real := msg("ok"))
    [delivery] = await d.dequeue(["ok"], limit=1, wait=0)
    await d.dead_letter(delivery, Failure("E", "m", "t"))
    columns = (
        "task_id, queue, payload, visibility_timeout, attempts, "
        "exception_type, message, traceback, failed_at"
    )
    for values in (
        "CAST(x'ff' AS TEXT), 'ok', x'00', 30, 'x', 'E', 'm', 't', 'soon'",
        "'bad-queue', CAST(x'ffbad0' AS TEXT), 5, 'y', -2, x'ff', 7, 'e', 1e300",
        "'far', 'ok', 'text', 30, 99999999999, 'E', 'm', CAST(x'c0' AS TEXT), -1e300",
    ):
        raw.execute(f"INSERT INTO asynctasq_dead_letters ({columns}) VALUES ({values})")
    listed = await d.list_dead_letters(limit=100)
    by_id = {x.task_id: x for x in listed}
    assert set(by_id) == {real.task_id, "\ufffd", "bad-queue", "far"}
    assert by_id[real.task_id].failure == Failure("E", "m", "t")
    assert (by_id["\ufffd"].attempts, by_id["\ufffd"].failed_at.timestamp()) == (0, 0)
    assert by_id["bad-queue"].queue == "\ufffd\ufffd\ufffd"
    assert by_id["bad-queue"].failure == Failure("\ufffd", "7", "e")
    assert (by_id["bad-queue"].payload, by_id["bad-queue"].attempts) == (b"5", 0)
    assert by_id["far"].attempts == 99999999999
    assert by_id["far"].failed_at.timestamp() == 0
    assert by_id["far"].failure.traceback == "\ufffd"
    assert await d.queue_names() == ["ok", "\ufffd\ufffd\ufffd"]
    assert len(await d.stats(await d.queue_names())) == 2
    # a retry moves them as they are; the dequeue then buries the malformed ones again
    assert await d.retry_dead_letters() == 4
    got = await d.dequeue(["ok"], limit=10, wait=0)
    assert sorted(x.task_id for x in got) == sorted([real.task_id, "far"])
    assert {x.task_id for x in await d.list_dead_letters(queue="ok")} == {"\ufffd"}


async def test_lifecycle_rows_of_other_types_are_read_as_bytes(
    sqlite_driver: SqliteDriver, raw: sqlite3.Connection
) -> None:
    d = sqlite_driver
    later = time.time() + 60
    # INTEGER values: bytes() of them would be that many zero bytes
    raw.execute(
        "INSERT INTO asynctasq_statuses (task_id, queue, state, record, expires_at) "
        f"VALUES ('int', 'q', 'running', 5, {later}), "
        f"('text', 'q', 'running', CAST(x'ff' AS TEXT), {later})"
    )
    raw.execute(
        f"INSERT INTO asynctasq_logs (log, entry, expires_at) VALUES ('events', 7, {later})"
    )
    raw.execute(
        "INSERT INTO asynctasq_workers (worker_id, info, expires_at) "
        f"VALUES ('w', CAST(x'ff' AS TEXT), {later})"
    )
    raw.execute(
        f"INSERT INTO asynctasq_results (task_id, result, expires_at) VALUES ('r', 9, {later})"
    )
    assert sorted(await d.list_statuses()) == [b"5", b"\xff"]
    assert await d.read_status("int") == b"5"
    assert (await d.read_log("events", None, wait=0))[0] == [b"7"]
    assert await d.list_workers() == [b"\xff"]
    assert await d.fetch_result("r", wait=0) == b"9"
