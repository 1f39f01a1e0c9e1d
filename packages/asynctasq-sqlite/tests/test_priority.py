"""Priorities on SQLite beyond the conformance suite: the upgrade from a version 4 file, bad
priorities at enqueue, and rows whose priority was written behind the driver's back."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq.errors import SchemaNotInitializedError
from asynctasq_sqlite import SqliteDriver
from asynctasq_sqlite.schema import MIGRATIONS


def msg(priority: int = 0, queue: str = "q") -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, b"{}", priority=priority)


def _write_version_4(path: Path) -> None:
    """A file as the previous release left it, with a message and a dead letter in it."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:4]:
        for statement in migration.statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    now = time.time()
    conn.execute(
        "INSERT INTO asynctasq_messages (task_id, queue, payload, visibility_timeout, "
        "available_at, enqueued_at) VALUES ('old', 'q', x'7b7d', 30, ?, ?)",
        (now - 1, now - 1),
    )
    conn.execute(
        "INSERT INTO asynctasq_dead_letters (task_id, queue, payload, visibility_timeout, "
        "attempts, exception_type, message, traceback, failed_at) "
        "VALUES ('dead', 'q', x'7b7d', 30, 1, 'E', 'm', 't', ?)",
        (now,),
    )
    conn.commit()
    conn.close()


async def test_a_version_4_file_gets_priorities(db_path: Path) -> None:
    assert MIGRATIONS[4].version == 5
    _write_version_4(db_path)
    strict = SqliteDriver(path=str(db_path), auto_migrate=False)
    with pytest.raises(SchemaNotInitializedError, match="migrate"):
        await strict.connect()  # a driver newer than the file says what to do
    driver = SqliteDriver(path=str(db_path), auto_migrate=False)
    try:
        assert await driver.init_schema() == [5]
        urgent, later = msg(4), msg(0)
        await driver.enqueue_many([later, urgent])
        got = await driver.dequeue(["q"], limit=3, wait=0)
        # Rows queued before the upgrade are priority 0, still oldest first among those.
        assert [d.task_id for d in got] == [urgent.task_id, "old", later.task_id]
        assert await driver.retry_dead_letters(task_ids=["dead"]) == 1  # kept, priority 0
        await driver.enqueue(top := msg(1))
        assert [d.task_id for d in await driver.dequeue(["q"], limit=2, wait=0)] == [
            top.task_id,
            "dead",
        ]
    finally:
        await driver.close()


@pytest.mark.parametrize("bad", [10, -1, True, 2.5, "3"])
async def test_a_priority_outside_0_to_9_is_refused(
    sqlite_driver: SqliteDriver, bad: object
) -> None:
    wrong = OutgoingMessage(str(uuid.uuid4()), "q", b"{}", priority=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="priority must be a whole number from 0 to 9"):
        await sqlite_driver.enqueue(wrong)
    with pytest.raises(ValueError, match=str(wrong.task_id)):
        await sqlite_driver.enqueue_many([msg(3), wrong])
    assert await sqlite_driver.dequeue(["q"], limit=5, wait=0) == []  # nothing was queued


def _forge(path: Path, priorities: list[object]) -> list[str]:
    """Rows written behind the driver's back, ready now, with these priority values."""
    conn = sqlite3.connect(path)
    ids = []
    now = time.time()
    for index, priority in enumerate(priorities):
        task_id = f"forged-{index}"
        conn.execute(
            "INSERT INTO asynctasq_messages (task_id, queue, payload, visibility_timeout, "
            "available_at, enqueued_at, priority) VALUES (?, 'q', x'7b7d', 30, ?, ?, ?)",
            (task_id, now - 10 + index * 0.001, now, priority),
        )
        ids.append(task_id)
    conn.commit()
    conn.close()
    return ids


async def test_forged_priorities_are_handed_out_not_lost(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    """A priority that is not 0-9 (any value: the table is not STRICT) never strands its
    row: it is served in FIFO order with priority 0, after every real level."""
    forged = _forge(db_path, ["x", b"\x00", 42, -3, 0.5, 10**18])
    await sqlite_driver.enqueue(urgent := msg(9))
    got = await sqlite_driver.dequeue(["q"], limit=20, wait=0)
    ids = [d.task_id for d in got]
    assert ids[0] == urgent.task_id
    assert ids[1] == forged[4]  # 0.5 sorts as a level between 0 and 1
    assert sorted(ids[2:]) == sorted(forged[:4] + forged[5:])
    assert ids[2:] == [f for f in forged if f != forged[4]]  # the rest oldest first


async def test_many_forged_levels_cost_at_most_nine_seeks_and_lose_nothing(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    """Distinct fractional priorities would make one level each: the walk stops after nine,
    and the rest comes from the FIFO scan of the same dequeue."""
    forged = _forge(db_path, [n / 10 for n in range(1, 40)])
    got = await sqlite_driver.dequeue(["q"], limit=100, wait=0)
    ids = [d.task_id for d in got]
    assert sorted(ids) == sorted(forged)
    assert ids[:9] == list(reversed(forged))[:9]  # the nine highest first, highest first
    assert ids[9:] == forged[:30]  # then oldest first: the walk stopped after nine levels
