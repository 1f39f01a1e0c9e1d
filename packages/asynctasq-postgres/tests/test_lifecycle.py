"""Status records, logs and the worker registry on PostgreSQL, beyond the conformance suite."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeAlias

import asyncpg
import pytest

from asynctasq.drivers.base import MAX_WORKER_RECORDS, StatusWrite
from asynctasq_postgres import PostgresDriver

Factory = Callable[..., PostgresDriver]
Admin: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def write(task_id: str, state: str, record: bytes, ttl: float = 60) -> StatusWrite:
    return StatusWrite(task_id, "q", state, record, ttl)


async def test_a_batch_is_ordered_as_given_and_the_last_write_of_an_id_wins(
    driver: PostgresDriver,
) -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    batch = [write(a, "queued", b"a1"), write(b, "queued", b"b"), write(a, "running", b"a2")]
    await driver.write_statuses([*batch, write(c, "queued", b"c")])
    assert await driver.list_statuses(queue="q") == [b"c", b"a2", b"b"]
    assert await driver.list_statuses(state="queued") == [b"c", b"b"]
    assert await driver.read_status(a) == b"a2"


async def test_listings_without_a_state_merge_every_state(driver: PostgresDriver) -> None:
    states = ["queued", "running", "succeeded", "failed", "cancelled"]
    writes = [
        StatusWrite(str(uuid.uuid4()), f"q{n % 2}", states[n % 5], str(n).encode(), 60)
        for n in range(40)
    ]
    await driver.write_statuses(writes)
    newest_first = [w.record for w in reversed(writes)]
    assert await driver.list_statuses(limit=7) == newest_first[:7]
    in_q1 = [w.record for w in reversed(writes) if w.queue == "q1"]
    assert await driver.list_statuses(queue="q1", limit=9) == in_q1[:9]
    assert await driver.list_statuses(queue="q1", limit=0) == []


async def test_expired_records_are_swept_now_and_then(driver: PostgresDriver, admin: Admin) -> None:
    names = driver.table_names
    old = [write(str(uuid.uuid4()), "succeeded", b"old") for _ in range(5)]
    await driver.write_statuses(old)
    await admin.execute(f"UPDATE {names.status} SET expires_at = now() - interval '1 second'")
    assert await driver.read_status(old[0].task_id) is None
    # Within the sweep interval a write leaves expired rows to a later sweep...
    await driver.write_statuses([write(str(uuid.uuid4()), "queued", b"new")])
    assert await admin.fetchval(f"SELECT count(*) FROM {names.status}") == 6
    # ...and the next due sweep deletes them, but never a record being rewritten.
    driver._sweep_due.clear()
    await driver.write_statuses([write(old[0].task_id, "queued", b"again")])
    assert await admin.fetchval(f"SELECT count(*) FROM {names.status}") == 2
    assert await driver.read_status(old[0].task_id) == b"again"


async def test_a_full_sweep_makes_the_next_write_sweep_again(
    driver: PostgresDriver, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asynctasq_postgres.driver as module

    monkeypatch.setattr(module, "_SWEEP_BATCH", 2)
    names = driver.table_names
    await driver.append_log("events", [b"x"] * 5, 60)
    await admin.execute(f"UPDATE {names.log} SET expires_at = now() - interval '1 second'")
    driver._sweep_due.clear()
    for _ in range(3):
        await driver.append_log("events", [b"y"], 60)
    # 2 + 2 + 1 expired entries gone; the three new ones kept.
    assert await admin.fetchval(f"SELECT count(*) FROM {names.log}") == 3
    assert driver._sweep_due["log"] > time.monotonic()


async def test_a_reader_never_steps_past_an_append_still_committing(
    driver: PostgresDriver, dsn: str
) -> None:
    """An append that drew its ids first but commits last is still read, in id order: the
    reader waits for it instead of moving its cursor past it."""
    log = "cancels"
    tail = await driver.log_tail(log)
    slow = await asyncpg.connect(dsn)
    try:
        transaction = slow.transaction()
        await transaction.start()
        await slow.fetchrow(driver._sql.append_log, log, [b"first"], 60.0, 0)
        await driver.append_log(log, [b"second"], 60)  # committed, with a higher id
        reader = asyncio.ensure_future(driver.read_log(log, tail, wait=0))
        await asyncio.sleep(0.3)
        assert not reader.done()  # waiting for "first" to settle, not skipping it
        await transaction.commit()
        entries, cursor = await asyncio.wait_for(reader, 5)
    finally:
        await slow.close()
    assert entries == [b"first", b"second"]
    assert await driver.read_log(log, cursor, wait=0) == ([], cursor)


async def test_a_rolled_back_append_leaves_no_entry_and_frees_the_readers(
    driver: PostgresDriver, dsn: str
) -> None:
    log = "events"
    slow = await asyncpg.connect(dsn)
    try:
        transaction = slow.transaction()
        await transaction.start()
        await slow.fetchrow(driver._sql.append_log, log, [b"never"], 60.0, 0)
        await driver.append_log(log, [b"kept"], 60)
        reader = asyncio.ensure_future(driver.read_log(log, None, wait=0))
        await asyncio.sleep(0.2)
        await transaction.rollback()
        entries, _ = await asyncio.wait_for(reader, 5)
    finally:
        await slow.close()
    assert entries == [b"kept"]


async def test_a_reader_with_nothing_new_does_not_wait_for_appends_in_flight(
    driver: PostgresDriver, dsn: str
) -> None:
    await driver.append_log("events", [b"old"], 60)
    tail = await driver.log_tail("events")
    slow = await asyncpg.connect(dsn)
    try:
        transaction = slow.transaction()
        await transaction.start()
        await slow.fetchrow(driver._sql.append_log, "events", [b"uncommitted"], 60.0, 0)
        started = time.monotonic()
        assert await driver.read_log("events", tail, wait=0) == ([], tail)
        assert time.monotonic() - started < 2.0  # not held by the open transaction
        await transaction.rollback()
    finally:
        await slow.close()


async def test_an_idle_reader_looks_once_per_wait(
    driver: PostgresDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks = 0
    original = driver._read_log

    async def counting(*args: Any) -> tuple[list[bytes], str] | None:
        nonlocal looks
        looks += 1
        return await original(*args)

    monkeypatch.setattr(driver, "_read_log", counting)
    await driver.append_log("events", [b"old"], 60)
    tail = await driver.log_tail("events")
    started = time.monotonic()
    assert await driver.read_log("events", tail, wait=0.5) == ([], tail)
    assert 0.45 < time.monotonic() - started < 1.5
    assert looks == 1


async def test_appends_from_another_driver_wake_a_reader(make_driver: Factory) -> None:
    reader_side = make_driver()
    await reader_side.init_schema()
    writer_side = make_driver(schema=reader_side.table_names.schema)
    tail = await reader_side.log_tail("events")
    reader = asyncio.ensure_future(reader_side.read_log("events", tail, wait=10))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await writer_side.append_log("events", [b"hello"], 60)
    entries, _ = await asyncio.wait_for(reader, 5)
    assert entries == [b"hello"]
    assert time.monotonic() - started < 2.0  # woken: the wait was for 10 s


async def test_logs_are_separate_and_appends_to_another_log_do_not_wake(
    driver: PostgresDriver,
) -> None:
    tail = await driver.log_tail("cancels")
    reader = asyncio.ensure_future(driver.read_log("cancels", tail, wait=0.6))
    await asyncio.sleep(0.1)
    await driver.append_log("events", [b"not for cancels"], 60)
    assert await reader == ([], tail)


async def test_log_cursors_are_checked(driver: PostgresDriver) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await driver.read_log("events", "1-0", wait=0)
    with pytest.raises(ValueError, match="limit"):
        await driver.read_log("events", None, wait=0, limit=0)
    assert await driver.log_tail("events") == "0"
    assert await driver.read_log("events", None, wait=0) == ([], "0")


async def test_a_listing_reads_a_bounded_number_of_forged_records(
    driver: PostgresDriver, admin: Admin
) -> None:
    """Anyone who can write to the database can add worker records; a listing (every
    dashboard refresh) returns `MAX_WORKER_RECORDS` of them at most."""
    await driver.heartbeat_worker("real", b"real", 60)  # creates the table
    await admin.execute(
        f"INSERT INTO {driver.table_names.workers} (worker_id, info, expires_at) "
        f"SELECT 'forged' || n, 'x'::bytea, now() + interval '1 hour' "
        f"FROM generate_series(1, {MAX_WORKER_RECORDS + 500}) AS n"
    )
    assert len(await driver.list_workers()) == MAX_WORKER_RECORDS


async def test_a_heartbeat_deletes_the_records_of_workers_long_gone(
    driver: PostgresDriver, admin: Admin
) -> None:
    names = driver.table_names
    await driver.heartbeat_worker("gone", b"gone", 60)
    await driver.heartbeat_worker("late", b"late", 60)
    await admin.execute(f"UPDATE {names.workers} SET expires_at = now() - interval '1 second'")
    assert await driver.list_workers() == []
    await driver.heartbeat_worker("late", b"late:2", 60)  # its own record is renewed
    assert await driver.list_workers() == [b"late:2"]
    assert await admin.fetchval(f"SELECT count(*) FROM {names.workers}") == 1
    await driver.remove_worker("late")
    await driver.remove_worker("never-there")
    assert await driver.list_workers() == []
