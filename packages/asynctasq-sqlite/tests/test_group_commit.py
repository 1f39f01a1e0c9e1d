"""Group commit: writes queued together share one transaction, yet fail alone."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_sqlite import SqliteDriver
from asynctasq_sqlite import _operations as ops
from asynctasq_sqlite._group_commit import run_grouped
from asynctasq_sqlite._thread import Job
from asynctasq_sqlite.schema import ensure_schema


def message(payload: bytes | None = b"{}") -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), "q", payload)  # type: ignore[arg-type]


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=0.2)
    conn.execute("PRAGMA journal_mode = WAL")
    ensure_schema(conn)
    yield conn
    conn.close()


def count(conn: sqlite3.Connection) -> int:
    (n,) = conn.execute("SELECT count(*) FROM asynctasq_messages").fetchone()
    return int(n)


def test_consecutive_writes_commit_once_and_fail_alone(conn: sqlite3.Connection) -> None:
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    jobs = [
        Job(partial(ops.enqueue, conn, [message()]), groupable=True),
        Job(partial(ops.enqueue, conn, [message(), message(None)]), groupable=True),
        Job(partial(ops.enqueue, conn, [message()]), groupable=True),
    ]
    outcomes = run_grouped(conn, jobs)
    conn.set_trace_callback(None)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert isinstance(outcomes[1][1], sqlite3.IntegrityError)
    assert count(conn) == 2  # the failed batch rolled back to its savepoint, alone
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1


def test_a_read_splits_the_group(conn: sqlite3.Connection) -> None:
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    write = Job(partial(ops.enqueue, conn, [message()]), groupable=True)
    read = Job(partial(ops.stats, conn, ["q"]), groupable=False)
    outcomes = run_grouped(conn, [write, write, read, write])
    conn.set_trace_callback(None)
    assert all(ok for ok, _ in outcomes)
    assert outcomes[2][1][0].ready == 2  # the read saw the first group committed
    assert statements.count("BEGIN IMMEDIATE") == 2  # one group of two, one write alone
    assert count(conn) == 3


def test_a_busy_database_fails_each_write_on_its_own(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        write = Job(partial(ops.enqueue, conn, [message()]), groupable=True)
        outcomes = run_grouped(conn, [write, write])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [ok for ok, _ in outcomes] == [False, False]
    assert all("locked" in str(error) for _, error in outcomes)
    assert not conn.in_transaction
    assert count(conn) == 0


async def test_concurrent_operations_through_the_driver(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path))
    await driver.enqueue_many([message() for _ in range(50)])
    got = await driver.dequeue(["q"], limit=50, wait=0)
    bad = [message(), message(None)]
    results = await asyncio.gather(
        *(driver.ack([d]) for d in got[:40]),
        driver.enqueue_many(bad),
        *(driver.enqueue(message()) for _ in range(5)),
        driver.retry(got[40], delay=0),
        driver.release(got[41:]),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], sqlite3.IntegrityError)
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (5 + 1 + 9, 0)
    await driver.close()
