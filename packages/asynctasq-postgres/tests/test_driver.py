"""PostgreSQL-specific behaviour beyond the conformance suite."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from asynctasq.drivers.base import Delivery, Failure, OutgoingMessage
from asynctasq_postgres import PostgresDriver

Factory = Callable[..., PostgresDriver]
Admin = "asyncpg.Connection[asyncpg.Record]"


def msg(queue: str = "q", payload: bytes = b"{}", **options: Any) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, payload, **options)


async def row_of(admin: Admin, driver: PostgresDriver, delivery: Delivery) -> asyncpg.Record:
    row = await admin.fetchrow(
        f"SELECT * FROM {driver.table_names.queue} WHERE id = $1", delivery.receipt[0]
    )
    assert row is not None
    return row


async def test_sixteen_mib_payloads_round_trip(driver: PostgresDriver) -> None:
    big = bytes(range(256)) * (16 * 1024 * 4)  # 16 MiB, every byte value
    assert len(big) == 16 * 1024 * 1024
    await driver.enqueue(msg(payload=big))
    await driver.enqueue_many([msg(payload=big[:-1]), msg(payload=b"\x00")])
    got = await driver.dequeue(["q"], limit=3, wait=0)
    assert [len(d.payload) for d in got] == [len(big), len(big) - 1, 1]
    assert got[0].payload == big


async def test_batches_span_queues_in_the_order_given(driver: PostgresDriver) -> None:
    await driver.enqueue_many([msg("b") for _ in range(5)] + [msg("a") for _ in range(2)])
    got = await driver.dequeue(["a", "b"], limit=5, wait=0)
    assert [d.queue for d in got] == ["a", "a", "b", "b", "b"]
    assert [d.receipt[0] for d in got[2:]] == sorted(d.receipt[0] for d in got[2:])


async def test_visibility_timeout_is_stored_per_message(
    driver: PostgresDriver, admin: Admin
) -> None:
    await driver.enqueue_many([msg(visibility_timeout=7.5), msg(visibility_timeout=120)])
    got = await driver.dequeue(["q"], limit=2, wait=0)
    assert [d.visibility_timeout for d in got] == [7.5, 120.0]
    lease = await admin.fetchval(
        f"SELECT extract(epoch FROM leased_until - now()) FROM {driver.table_names.queue} "
        "WHERE id = $1",
        got[0].receipt[0],
    )
    assert 6.0 < float(lease) <= 7.5


async def test_a_task_that_kills_its_worker_keeps_counting(driver: PostgresDriver) -> None:
    """Leases that expire (the worker died) keep the delivery count, so the worker's
    max-attempts check eventually dead-letters such a task."""
    message = msg(visibility_timeout=0.3)
    await driver.enqueue(message)
    attempts = []
    for _ in range(3):
        [delivery] = await driver.dequeue(["q"], limit=1, wait=2.0)
        attempts.append(delivery.attempts)  # ... and the worker dies: no ack, no retry
    assert attempts == [0, 1, 2]


async def test_retry_is_one_statement_keeping_the_count(
    driver: PostgresDriver, admin: Admin
) -> None:
    await driver.enqueue(msg())
    [delivery] = await driver.dequeue(["q"], limit=1, wait=0)
    await driver.retry(delivery, delay=30)
    row = await row_of(admin, driver, delivery)
    assert row["leased_until"] is None
    assert row["attempts"] == 1
    assert 29 < (row["available_at"] - row["enqueued_at"]).total_seconds() <= 31
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 1, 0)


async def test_dead_letter_moves_the_row_whole(driver: PostgresDriver, admin: Admin) -> None:
    message = msg(payload=b"\x00keep\xff", visibility_timeout=42)
    await driver.enqueue(message)
    [first] = await driver.dequeue(["q"], limit=1, wait=0)
    await driver.retry(first, delay=0)
    [second] = await driver.dequeue(["q"], limit=1, wait=0)
    failure = Failure("app.Boom", "it broke", "Traceback (most recent call last):\n  ...")
    await driver.dead_letter(second, failure)
    assert await admin.fetchval(f"SELECT count(*) FROM {driver.table_names.queue}") == 0
    row = await admin.fetchrow(f"SELECT * FROM {driver.table_names.dead_letter}")
    assert row is not None
    assert row["task_id"] == uuid.UUID(message.task_id)
    assert (row["payload"], row["attempts"], row["visibility_timeout"]) == (
        b"\x00keep\xff",
        2,
        42.0,
    )
    assert (row["exception_type"], row["message"], row["traceback"]) == (
        failure.exception_type,
        failure.message,
        failure.traceback,
    )
    # A retried dead letter keeps its visibility timeout and starts counting afresh.
    assert await driver.retry_dead_letters(queue="q") == 1
    [again] = await driver.dequeue(["q"], limit=1, wait=0)
    assert (again.task_id, again.attempts, again.visibility_timeout) == (
        message.task_id,
        0,
        42.0,
    )


async def test_stale_receipts_change_nothing(driver: PostgresDriver) -> None:
    await driver.enqueue(msg(visibility_timeout=0.2))
    [stale] = await driver.dequeue(["q"], limit=1, wait=0)
    await asyncio.sleep(0.3)
    [current] = await driver.dequeue(["q"], limit=1, wait=0)
    await driver.extend([current], 30)
    await driver.dead_letter(stale, Failure("x.E", "late", "tb"))
    await driver.release([stale])
    await driver.retry(stale, delay=0)
    await driver.ack([stale])
    assert await driver.list_dead_letters() == []
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 1)
    await driver.ack([current])
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 0)


async def test_an_expired_lease_acked_with_a_dequeue_is_not_taken_again(
    driver: PostgresDriver,
) -> None:
    """One statement acks and takes: a row whose lease ran out is due again, and must be
    acked, not deleted and re-leased at once (or re-leased and its ack lost)."""
    await driver.enqueue(msg(visibility_timeout=0.2))
    [late] = await driver.dequeue(["q"], limit=1, wait=0)
    await asyncio.sleep(0.3)  # its lease is over: the row is ready again, unleased by nobody
    assert await driver.ack_and_dequeue([late], ["q"], limit=5, wait=0) == []
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 0)


async def test_dead_letter_filters_ignore_ids_that_are_not_uuids(driver: PostgresDriver) -> None:
    assert await driver.list_dead_letters(task_ids=["not-a-uuid"]) == []
    assert await driver.purge_dead_letters(task_ids=["not-a-uuid"]) == 0
    assert await driver.retry_dead_letters(task_ids=[]) == 0


async def test_stats_count_an_expired_lease_as_ready(driver: PostgresDriver) -> None:
    await driver.enqueue_many([msg(visibility_timeout=0.2), msg(visibility_timeout=60)])
    await driver.dequeue(["q"], limit=2, wait=0)
    await asyncio.sleep(0.3)
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (1, 0, 1, 0)
    assert stats.extra["oldest_ready_age"] >= 0


# -- transactional enqueue ---------------------------------------------------------------


async def test_enqueue_with_connection_follows_the_callers_transaction(
    driver: PostgresDriver, dsn: str
) -> None:
    connection = await asyncpg.connect(dsn)
    try:

        async def enqueue_then_fail() -> None:
            async with connection.transaction():
                await driver.enqueue_with_connection(connection, [msg()])
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            await enqueue_then_fail()
        assert await driver.dequeue(["q"], limit=5, wait=0) == []

        driver._poll_interval = 30.0  # so only the NOTIFY can wake it in time
        waiting = asyncio.create_task(driver.dequeue(["q"], limit=5, wait=20.0))
        committed = [msg(), msg()]
        async with connection.transaction():
            await driver.enqueue_with_connection(connection, committed)
            await asyncio.sleep(0.3)  # uncommitted rows: invisible, and no wake-up yet
            assert not waiting.done()
            assert await driver.dequeue(["q"], limit=5, wait=0) == []
        started = time.monotonic()
        got = await asyncio.wait_for(waiting, 20.0)
        assert time.monotonic() - started < 5.0  # the NOTIFY sent at commit (poll: 30 s)
        assert [d.task_id for d in got] == [m.task_id for m in committed]
    finally:
        await connection.close()


async def test_enqueue_with_a_pooled_connection(driver: PostgresDriver, dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection, connection.transaction():
            await driver.enqueue_with_connection(connection, [msg()])
        assert len(await driver.dequeue(["q"], limit=5, wait=0)) == 1
    finally:
        await pool.close()


# -- waking ------------------------------------------------------------------------------


async def test_idle_dequeue_wakes_within_milliseconds(make_driver: Factory) -> None:
    consumer = make_driver(poll_interval=30)
    await consumer.init_schema()
    producer = make_driver(schema=consumer.table_names.schema)
    latencies = []
    for _ in range(15):
        waiting = asyncio.create_task(consumer.dequeue(["q"], limit=1, wait=5.0))
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        await producer.enqueue(msg())
        got = await waiting
        latencies.append(time.perf_counter() - started)
        await consumer.ack(got)
    # Typically 1-3 ms (see docs/benchmarks/postgres.md); the bound leaves room for a busy
    # CI machine while still ruling out any polling (the fallback poll is 30 s here).
    assert statistics.median(latencies) < 0.25, latencies


async def test_waiting_dequeue_wakes_at_the_due_time_not_the_poll(driver: PostgresDriver) -> None:
    driver._poll_interval = 30.0  # so only the due time can explain a timely wake-up
    waiting = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=10.0))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await driver.enqueue(msg(delay=0.6))
    got = await asyncio.wait_for(waiting, 10.0)
    elapsed = time.monotonic() - started
    assert len(got) == 1
    assert 0.55 < elapsed < 5.0  # the due time, not the 30 s poll


async def test_waiting_dequeue_wakes_when_a_lease_expires(driver: PostgresDriver) -> None:
    driver._poll_interval = 30.0
    await driver.enqueue(msg(visibility_timeout=0.5))
    [first] = await driver.dequeue(["q"], limit=1, wait=0)
    started = time.monotonic()
    [again] = await driver.dequeue(["q"], limit=1, wait=10.0)
    assert again.task_id == first.task_id
    assert time.monotonic() - started < 5.0  # the lease expiry, not the 30 s poll


class _CountingPool:
    """Counts the statements a driver sends (instrumentation, not a fake: it delegates)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.calls = 0

    async def fetch(self, *args: Any) -> Any:
        self.calls += 1
        return await self.pool.fetch(*args)

    async def fetchval(self, *args: Any) -> Any:
        self.calls += 1
        return await self.pool.fetchval(*args)


async def test_an_idle_dequeue_does_not_poll_tightly(driver: PostgresDriver) -> None:
    driver._poll_interval = 1.0
    counting = _CountingPool(driver._pool)
    driver._pool = counting  # type: ignore[assignment]
    try:
        assert await driver.dequeue(["q"], limit=1, wait=3.0) == []
    finally:
        driver._pool = counting.pool
    # One look (dequeue + next-due query) at the start and after each 1 s poll.
    assert counting.calls <= 8


async def test_close_wakes_a_waiting_dequeue(driver: PostgresDriver) -> None:
    waiting = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=30.0))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await driver.close()
    assert await asyncio.wait_for(waiting, 5.0) == []
    assert time.monotonic() - started < 10.0  # not the 30 s wait
    await driver.connect()  # and it can be used again
    assert await driver.dequeue(["q"], limit=1, wait=0) == []


# -- commit durability -------------------------------------------------------------------


async def _commit_mode_after(admin: Admin, statement: str, *args: Any) -> str:
    """synchronous_commit as a statement leaves it for its own transaction's commit."""
    async with admin.transaction():
        assert await admin.fetch(statement, *args) is not None
        mode: str = await admin.fetchval("SHOW synchronous_commit")
    return mode


async def test_lease_statements_skip_the_flush_and_enqueue_waits_for_it(
    make_driver: Factory, admin: Admin
) -> None:
    fast = make_driver()
    await fast.init_schema()
    durable = make_driver(schema=fast.table_names.schema, async_commit_leases=False)
    enqueue_args = (uuid.uuid4(), "q", b"", 0.0, 1.0)
    assert await _commit_mode_after(admin, fast._sql.enqueue, *enqueue_args) == "on"
    await fast.enqueue_many([msg() for _ in range(4)])
    assert await _commit_mode_after(admin, fast._sql.dequeue, ["q"], 1, [None], [None]) == "off"
    assert await _commit_mode_after(admin, durable._sql.dequeue, ["q"], 1, [None], [None]) == "on"
    first, second, third = await fast.dequeue(["q"], limit=3, wait=0)
    assert await _commit_mode_after(admin, fast._sql.ack, *map(list, zip(first.receipt))) == "off"
    assert await _commit_mode_after(admin, fast._sql.retry, *second.receipt, 0.0) == "off"
    failure = ("x.E", "m", "tb")
    assert await _commit_mode_after(admin, fast._sql.dead_letter, *third.receipt, *failure) == "on"
    assert await fast.list_dead_letters()  # the statements did change rows


async def test_a_result_wakes_its_waiter_through_notify(make_driver: Factory) -> None:
    waiting_side = make_driver(poll_interval=30.0)  # so only the NOTIFY can wake it in time
    storing_side = make_driver(schema=waiting_side.table_names.schema)
    await waiting_side.init_schema()
    task_id = str(uuid.uuid4())
    waiter = asyncio.create_task(waiting_side.fetch_result(task_id, 20.0))
    other = asyncio.create_task(waiting_side.fetch_result(str(uuid.uuid4()), 0.5))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    started = time.monotonic()
    await storing_side.store_result(task_id, b'{"ok":1}', 60)
    assert await asyncio.wait_for(waiter, 20.0) == b'{"ok":1}'
    assert time.monotonic() - started < 1.0  # the NOTIFY (poll: 30 s)
    assert await other is None  # another task's waiter is not handed this one
