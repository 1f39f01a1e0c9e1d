"""Behaviour of the SQLite driver beyond the shared conformance suite."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from asynctasq.drivers.base import Failure, OutgoingMessage, QueueStats
from asynctasq_sqlite import SqliteDriver


def msg(
    queue: str = "q",
    *,
    delay: float = 0.0,
    visibility_timeout: float = 60.0,
    payload: bytes | None = b"{}",
) -> OutgoingMessage:
    return OutgoingMessage(
        task_id=str(uuid.uuid4()),
        queue=queue,
        payload=payload,  # type: ignore[arg-type]  # None on purpose in one test
        delay=delay,
        visibility_timeout=visibility_timeout,
    )


def raw_insert(path: Path, message: OutgoingMessage) -> None:
    """Insert as another process would: a separate connection, no in-process wake-up."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    now = time.time()
    conn.execute(
        "INSERT INTO asynctasq_messages (task_id, queue, payload, visibility_timeout, "
        "attempts, available_at, enqueued_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
        (message.task_id, message.queue, message.payload, message.visibility_timeout, now, now),
    )
    conn.close()


def test_entry_point_names_the_driver() -> None:
    [ep] = entry_points(group="asynctasq.drivers", name="sqlite")
    assert ep.value == "asynctasq_sqlite:SqliteDriver"
    assert ep.load() is SqliteDriver


async def test_default_path_is_asynctasq_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    driver = SqliteDriver()
    assert driver.path == str(tmp_path / "asynctasq.db")
    await driver.enqueue(msg())  # connects lazily
    await driver.close()
    assert (tmp_path / "asynctasq.db").is_file()


def test_settings_are_validated() -> None:
    with pytest.raises(TypeError, match="url"):
        SqliteDriver(url="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="synchronous"):
        SqliteDriver(synchronous="sometimes")
    with pytest.raises(ValueError, match="poll_interval"):
        SqliteDriver(poll_interval=0)


async def test_connect_is_idempotent_and_close_allows_reuse(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path))
    await asyncio.gather(driver.connect(), driver.connect())
    await driver.connect()
    await driver.enqueue(msg())
    await driver.close()
    await driver.close()
    [got] = await driver.dequeue(["q"], limit=5, wait=0)  # reconnects lazily
    assert got.attempts == 0
    await driver.close()


async def test_operations_work_before_connect(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path))
    assert await driver.stats(["q"]) == [QueueStats("q")]
    await driver.close()


async def test_visibility_timeout_is_stored_per_message(sqlite_driver: SqliteDriver) -> None:
    await sqlite_driver.enqueue(msg(visibility_timeout=7.0))
    await sqlite_driver.enqueue(msg(visibility_timeout=1.0))
    first, second = await sqlite_driver.dequeue(["q"], limit=2, wait=0)
    assert (first.visibility_timeout, second.visibility_timeout) == (7.0, 1.0)
    await asyncio.sleep(1.2)
    # Only the 1 s lease has run out; the 7 s one is still held.
    [again] = await sqlite_driver.dequeue(["q"], limit=2, wait=0)
    assert (again.task_id, again.attempts, again.visibility_timeout) == (second.task_id, 1, 1.0)


async def test_retry_keeps_the_delivery_count_across_many_attempts(
    sqlite_driver: SqliteDriver,
) -> None:
    await sqlite_driver.enqueue(msg())
    for expected in range(4):
        [d] = await sqlite_driver.dequeue(["q"], limit=1, wait=0)
        assert d.attempts == expected
        await sqlite_driver.retry(d, delay=0)
    [d] = await sqlite_driver.dequeue(["q"], limit=1, wait=0)
    await sqlite_driver.dead_letter(d, Failure("builtins.KeyError", "'k'", "tb"))
    [dead] = await sqlite_driver.list_dead_letters()
    assert dead.attempts == 5


async def test_release_of_an_expired_and_retaken_lease_is_ignored(
    sqlite_driver: SqliteDriver,
) -> None:
    await sqlite_driver.enqueue(msg(visibility_timeout=0.2))
    [first] = await sqlite_driver.dequeue(["q"], limit=1, wait=0)
    await asyncio.sleep(0.3)
    [second] = await sqlite_driver.dequeue(["q"], limit=1, wait=0)
    await sqlite_driver.release([first])
    await sqlite_driver.dead_letter(first, Failure("x.Y", "late", "tb"))
    [stats] = await sqlite_driver.stats(["q"])
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 1, 0)
    await sqlite_driver.ack([second])
    [stats] = await sqlite_driver.stats(["q"])
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)


async def test_expired_lease_counts_as_ready(sqlite_driver: SqliteDriver) -> None:
    # A lease long enough for the first look even on a busy machine.
    await sqlite_driver.enqueue(msg(visibility_timeout=1.0))
    await sqlite_driver.dequeue(["q"], limit=1, wait=0)
    [stats] = await sqlite_driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 1)
    await asyncio.sleep(1.1)
    [stats] = await sqlite_driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (1, 0)


async def test_enqueue_many_is_one_transaction(sqlite_driver: SqliteDriver) -> None:
    batch = [msg(), msg(payload=None), msg()]  # the second violates NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        await sqlite_driver.enqueue_many(batch)
    assert await sqlite_driver.dequeue(["q"], limit=10, wait=0) == []


async def test_batch_dequeue_spans_queues_in_order(sqlite_driver: SqliteDriver) -> None:
    await sqlite_driver.enqueue_many([msg("a") for _ in range(3)] + [msg("b") for _ in range(3)])
    got = await sqlite_driver.dequeue(["b", "a"], limit=5, wait=0)
    assert [d.queue for d in got] == ["b", "b", "b", "a", "a"]
    await sqlite_driver.ack(got)
    [a, b] = await sqlite_driver.stats(["a", "b"])
    assert (a.ready, b.ready) == (1, 0)


async def test_purge_keeps_live_leases(sqlite_driver: SqliteDriver) -> None:
    await sqlite_driver.enqueue_many([msg() for _ in range(3)])
    [leased] = await sqlite_driver.dequeue(["q"], limit=1, wait=0)
    assert await sqlite_driver.purge("q") == 2
    await sqlite_driver.ack([leased])
    assert await sqlite_driver.queue_names() == []


async def test_queue_names_cover_live_and_dead(sqlite_driver: SqliteDriver) -> None:
    await sqlite_driver.enqueue_many([msg("b"), msg("a"), msg("b", delay=60)])
    await sqlite_driver.enqueue(msg("dead"))
    [d] = await sqlite_driver.dequeue(["dead"], limit=1, wait=0)
    await sqlite_driver.dead_letter(d, Failure("x.Y", "m", "tb"))
    assert await sqlite_driver.queue_names() == ["a", "b", "dead"]


async def test_dead_letter_operations(sqlite_driver: SqliteDriver) -> None:
    ids: list[str] = []
    for queue in ["a", "a", "b"]:
        message = msg(queue, visibility_timeout=9.0)
        ids.append(message.task_id)
        await sqlite_driver.enqueue(message)
        [d] = await sqlite_driver.dequeue([queue], limit=1, wait=0)
        await sqlite_driver.dead_letter(d, Failure("m.E", queue, f"Traceback\n{queue}"))
    listed = await sqlite_driver.list_dead_letters()
    assert [d.task_id for d in listed] == ids  # oldest first
    assert [d.task_id for d in await sqlite_driver.list_dead_letters(limit=2)] == ids[:2]
    assert await sqlite_driver.list_dead_letters(queue="a", task_ids=[ids[2]]) == []
    assert await sqlite_driver.list_dead_letters(task_ids=[]) == []
    assert [d.task_id for d in await sqlite_driver.list_dead_letters(task_ids=ids[1])] == [ids[1]]
    assert listed[0].failure == Failure("m.E", "a", "Traceback\na")

    assert await sqlite_driver.retry_dead_letters(queue="a") == 2
    got = await sqlite_driver.dequeue(["a"], limit=5, wait=0)
    assert [(d.task_id, d.attempts, d.visibility_timeout) for d in got] == [
        (ids[0], 0, 9.0),
        (ids[1], 0, 9.0),
    ]
    assert await sqlite_driver.purge_dead_letters() == 1
    assert await sqlite_driver.list_dead_letters() == []


async def test_many_task_ids_in_one_filter(sqlite_driver: SqliteDriver) -> None:
    wanted = [str(uuid.uuid4()) for _ in range(40_000)]  # beyond SQLite's variable limit
    assert await sqlite_driver.purge_dead_letters(task_ids=wanted) == 0


async def test_bad_receipt_is_a_type_error(sqlite_driver: SqliteDriver) -> None:
    await sqlite_driver.enqueue(msg())
    [d] = await sqlite_driver.dequeue(["q"], limit=1, wait=0)
    d.receipt = "not-ours"
    with pytest.raises(TypeError, match="SqliteDriver"):
        await sqlite_driver.ack([d])


# -- waiting: woken in-process, polling across processes, bounded by due times ---------


async def test_enqueue_through_another_driver_on_the_same_file_wakes_at_once(
    db_path: Path,
) -> None:
    # A huge poll interval: only the in-process wake-up can deliver this quickly.
    consumer = SqliteDriver(path=str(db_path), poll_interval=30.0)
    producer = SqliteDriver(path=str(db_path))
    await consumer.connect()
    waiter = asyncio.create_task(consumer.dequeue(["q"], limit=1, wait=10.0))
    # The consumer's backoff (5, 10 ... 640 ms, then 1.28 s) next looks at ~2.56 s.
    await asyncio.sleep(1.4)
    sent_at = time.monotonic()
    await producer.enqueue(msg())
    got = await asyncio.wait_for(waiter, 5.0)
    assert len(got) == 1
    assert time.monotonic() - sent_at < 0.5  # polling alone would take >= 1.1 s
    await consumer.close()
    await producer.close()


async def test_another_process_enqueue_is_seen_within_the_poll_interval(
    sqlite_driver: SqliteDriver, db_path: Path
) -> None:
    waiter = asyncio.create_task(sqlite_driver.dequeue(["q"], limit=1, wait=10.0))
    await asyncio.sleep(1.0)
    sent_at = time.monotonic()
    raw_insert(db_path, msg())  # no in-process notification
    got = await asyncio.wait_for(waiter, 5.0)
    assert len(got) == 1
    # Bounded by the poll interval (50 ms; slack for a loaded host), not the 10 s wait.
    assert time.monotonic() - sent_at < sqlite_driver.poll_interval + 0.5


async def test_wait_ends_when_the_next_delayed_message_is_due(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path), poll_interval=30.0)
    await driver.enqueue(msg(delay=3.0))
    started = time.monotonic()
    got = await driver.dequeue(["q"], limit=1, wait=20.0)
    elapsed = time.monotonic() - started
    assert len(got) == 1
    # The backoff alone (5, 10, 20 ... 1280 ms, then 2.56 s) would look again at ~5.1 s.
    assert 2.9 <= elapsed < 4.0
    await driver.close()


async def test_wait_returns_empty_on_time(sqlite_driver: SqliteDriver) -> None:
    started = time.monotonic()
    assert await sqlite_driver.dequeue(["q"], limit=1, wait=0.3) == []
    assert 0.29 <= time.monotonic() - started < 0.6


async def test_cancelled_dequeue_leaves_nothing_leased(sqlite_driver: SqliteDriver) -> None:
    # Cancel at many points of a dequeue; whatever the thread took is given back.
    for step in range(30):
        await sqlite_driver.enqueue(msg(visibility_timeout=3600))
        waiter = asyncio.create_task(sqlite_driver.dequeue(["q"], limit=1, wait=5.0))
        for _ in range(step % 6):
            await asyncio.sleep(0)
        waiter.cancel()
        try:
            got = await waiter
        except asyncio.CancelledError:
            got = []
        await sqlite_driver.ack(got)
        [stats] = await sqlite_driver.stats(["q"])
        assert stats.in_flight == 0, f"step {step}: a cancelled dequeue kept a lease"
        await sqlite_driver.purge("q")


async def test_close_ends_a_waiting_dequeue(db_path: Path) -> None:
    driver = SqliteDriver(path=str(db_path))
    waiter = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=10.0))
    await asyncio.sleep(0.2)
    await driver.close()
    assert await asyncio.wait_for(waiter, 2.0) == []


async def test_a_forked_child_can_use_the_parents_driver(sqlite_driver: SqliteDriver) -> None:
    message = msg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: the parent's thread and connection do not exist here
        code = 1
        try:
            asyncio.run(asyncio.wait_for(sqlite_driver.enqueue(message), 10))
            code = 0
        finally:
            os._exit(code)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    [got] = await sqlite_driver.dequeue(["q"], limit=1, wait=0)
    assert got.task_id == message.task_id
