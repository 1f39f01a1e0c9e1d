"""Behaviour beyond the conformance suite: payload limits, caller transactions, idling,
dead-letter details, server checks."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from asynctasq.drivers.base import Failure, OutgoingMessage
from asynctasq_mysql import (
    ConfigurationError,
    MySQLDriver,
    PayloadTooLargeError,
    UnsupportedServerError,
)
from asynctasq_mysql.idle import IdleBackoff
from asynctasq_mysql.server import check_packet_limit, check_version, required_packet

MiB = 1024 * 1024


def msg(queue: str = "q", payload: bytes = b"{}", **kwargs: Any) -> OutgoingMessage:
    return OutgoingMessage(task_id=str(uuid.uuid4()), queue=queue, payload=payload, **kwargs)


# -- payload size ------------------------------------------------------------------------


async def test_16_mib_payload_round_trips(driver: MySQLDriver) -> None:
    assert driver.server is not None
    if driver.server.max_allowed_packet < required_packet(16 * MiB):
        pytest.skip("the test server's max_allowed_packet is below 32 MiB and cannot be raised")
    # Random bytes plus a run of the bytes that escaping doubles.
    payload = os.urandom(16 * MiB - 4096) + b"'\\\x00\"" * 1024
    assert len(payload) == 16 * MiB
    message = msg(payload=payload)
    await driver.enqueue(message)
    [delivery] = await driver.dequeue(["q"], limit=1, wait=0)
    assert delivery.task_id == message.task_id
    assert delivery.payload == payload
    await driver.dead_letter(delivery, Failure("x.Big", "too big to fail", "tb"))
    [dead] = await driver.list_dead_letters(task_ids=[message.task_id])
    assert dead.payload == payload


async def test_explicit_payload_limit_the_server_cannot_carry_fails_at_connect(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver(max_payload_size=2048 * MiB)
    with pytest.raises(ConfigurationError, match="max_allowed_packet") as caught:
        await driver.connect()
    assert "SET GLOBAL max_allowed_packet" in str(caught.value)
    assert not driver.connected


def test_packet_check_errors_when_explicit_and_notes_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="asynctasq_mysql")
    assert required_packet(16 * MiB) > 32 * MiB
    check_packet_limit(64 * MiB, None)  # MySQL 8's default carries 16 MiB payloads
    assert caplog.records == []
    with pytest.raises(ConfigurationError, match="lower max_payload_size"):
        check_packet_limit(16 * MiB, 16 * MiB)
    # stock MariaDB: works, with a hint at INFO (not a warning printed by every process)
    check_packet_limit(16 * MiB, None)
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert "max_allowed_packet" in record.getMessage()
    assert "payloads are limited" in record.getMessage()


async def test_oversized_payloads_are_refused_before_anything_is_stored(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver(max_payload_size=1024)
    await driver.connect()
    with pytest.raises(PayloadTooLargeError, match="max_payload_size"):
        await driver.enqueue_many([msg(payload=b"ok"), msg(payload=b"x" * 1025)])
    assert await driver.dequeue(["q"], limit=5, wait=0) == []


# -- enqueue inside the caller's transaction ---------------------------------------------


async def test_enqueue_with_connection_follows_the_callers_transaction(
    driver: MySQLDriver, connect_raw: Callable[..., Any]
) -> None:
    conn = await connect_raw(autocommit=False)
    try:
        await conn.begin()
        await driver.enqueue_with_connection(conn, [msg(payload=b"rolled back")])
        await conn.rollback()
        assert await driver.dequeue(["q"], limit=5, wait=0) == []

        committed = [msg(payload=b"one"), msg(payload=b"two")]
        await conn.begin()
        await driver.enqueue_with_connection(conn, committed)
        assert await driver.dequeue(["q"], limit=5, wait=0) == []  # not visible before commit
        await conn.commit()
        got = await driver.dequeue(["q"], limit=5, wait=1)
        assert [d.task_id for d in got] == [m.task_id for m in committed]
    finally:
        conn.close()


async def test_payload_bytes_survive_no_backslash_escapes(
    driver: MySQLDriver, connect_raw: Callable[..., Any]
) -> None:
    """aiomysql's own bytes escaping breaks under this mode; the driver's does not."""
    conn = await connect_raw(sql_mode="NO_BACKSLASH_ESCAPES")
    try:
        payload = bytes(range(256)) + b"\\' '' \\\\ \x00"
        await driver.enqueue_with_connection(conn, [msg(payload=payload)])
        [delivery] = await driver.dequeue(["q"], limit=1, wait=0)
        assert delivery.payload == payload
    finally:
        conn.close()


# -- dequeue details ---------------------------------------------------------------------


async def test_batches_fill_from_queues_in_order_and_keep_per_message_leases(
    driver: MySQLDriver,
) -> None:
    first = [msg("a", visibility_timeout=7.5) for _ in range(2)]
    second = [msg("b", visibility_timeout=42.0) for _ in range(5)]
    await driver.enqueue_many(first + second)
    got = await driver.dequeue(["a", "b"], limit=4, wait=0)
    assert [d.task_id for d in got] == [m.task_id for m in first + second[:2]]
    assert [d.visibility_timeout for d in got] == [7.5, 7.5, 42.0, 42.0]


async def test_large_batches_split_into_statements_and_all_arrive(driver: MySQLDriver) -> None:
    sent = [msg(payload=os.urandom(64)) for _ in range(2500)]
    await driver.enqueue_many(sent)
    got = []
    while batch := await driver.dequeue(["q"], limit=1000, wait=0):
        got += batch
    assert [d.task_id for d in got] == [m.task_id for m in sent]
    assert [d.payload for d in got] == [m.payload for m in sent]
    await driver.ack(got)
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 0)


async def test_unicode_queue_names_and_ids_round_trip(driver: MySQLDriver) -> None:
    message = OutgoingMessage(task_id="tâche-✓", queue="émails 📬", payload=b"\xff")
    await driver.enqueue(message)
    [delivery] = await driver.dequeue(["émails 📬"], limit=1, wait=0)
    assert (delivery.task_id, delivery.queue) == ("tâche-✓", "émails 📬")
    assert await driver.dequeue(["EMAILS 📬", "émails"], limit=1, wait=0) == []
    assert await driver.queue_names() == ["émails 📬"]


async def test_expired_lease_counts_as_ready(driver: MySQLDriver) -> None:
    # A lease long enough for the first look even on a busy machine.
    await driver.enqueue(msg(visibility_timeout=1.0))
    await driver.dequeue(["q"], limit=1, wait=0)
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 1)
    await asyncio.sleep(1.1)
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (1, 0)


# -- idling ------------------------------------------------------------------------------


async def test_local_enqueue_wakes_a_sleeping_consumer_at_once(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver(poll_interval_min=3.0, poll_interval_max=3.0)
    await driver.connect()
    waiter = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=5.0))
    await asyncio.sleep(0.2)
    sent_at = time.monotonic()
    await driver.enqueue(msg())
    assert len(await waiter) == 1
    assert time.monotonic() - sent_at < 0.5


async def test_idle_consumer_wakes_for_the_next_delayed_row(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    producer = make_driver()
    consumer = make_driver(poll_interval_min=3.0, poll_interval_max=3.0)
    await producer.enqueue(msg(delay=0.6))  # another process, as far as `consumer` knows
    started = time.monotonic()
    got = await consumer.dequeue(["q"], limit=1, wait=5.0)
    elapsed = time.monotonic() - started
    assert len(got) == 1
    assert 0.5 < elapsed < 1.2, elapsed


async def test_idle_backoff_grows_to_its_cap_and_resets() -> None:
    idle = IdleBackoff(0.01, 0.05)
    slept = []
    for _ in range(5):
        slept.append(idle.interval)
        await idle.sleep(1.0)
    assert slept == [0.01, 0.02, 0.04, 0.05, 0.05]
    idle.found_work()
    assert idle.interval == 0.01
    await idle.sleep(1.0)
    sleeper = asyncio.create_task(idle.sleep(10.0))
    await asyncio.sleep(0)
    started = time.monotonic()
    idle.notify()
    assert await sleeper is True  # woken, not timed out
    assert time.monotonic() - started < 2.0  # woken: the sleep was for 10 s
    assert idle.interval == 0.01
    assert await idle.sleep(0.01) is False


# -- dead letters ------------------------------------------------------------------------


async def test_dead_letter_with_a_lost_lease_changes_nothing(driver: MySQLDriver) -> None:
    await driver.enqueue(msg(visibility_timeout=0.2))
    [stale] = await driver.dequeue(["q"], limit=1, wait=0)
    await asyncio.sleep(0.3)
    [current] = await driver.dequeue(["q"], limit=1, wait=0)
    await driver.dead_letter(stale, Failure("x.E", "late", "tb"))
    assert await driver.list_dead_letters() == []
    [stats] = await driver.stats(["q"])
    assert stats.in_flight == 1
    await driver.ack([current])


async def test_dead_letter_keeps_long_and_odd_error_texts(driver: MySQLDriver) -> None:
    await driver.enqueue(msg())
    [delivery] = await driver.dequeue(["q"], limit=1, wait=0)
    failure = Failure("pkg.mod.Error", "bad \udcff surrogate ✓", "line\n" * 300_000)
    await driver.dead_letter(delivery, failure)
    [dead] = await driver.list_dead_letters()
    assert dead.failure.message == "bad ? surrogate ✓"
    assert dead.failure.traceback.endswith("[truncated]")
    assert dead.attempts == 1


async def test_dead_letter_retry_and_purge_by_queue_and_all(driver: MySQLDriver) -> None:
    for queue in ("a", "a", "b", "c"):
        await driver.enqueue(msg(queue))
        [delivery] = await driver.dequeue([queue], limit=1, wait=0)
        await driver.dead_letter(delivery, Failure("x.E", queue, "tb"))
    assert len(await driver.list_dead_letters(limit=2)) == 2
    assert await driver.list_dead_letters(task_ids=[]) == []
    assert await driver.retry_dead_letters(queue="a") == 2
    assert len(await driver.dequeue(["a"], limit=5, wait=0)) == 2
    [stats] = await driver.stats(["b"])
    assert stats.dead == 1
    assert await driver.retry_dead_letters(task_ids=[]) == 0
    assert await driver.purge_dead_letters() == 2
    assert await driver.list_dead_letters() == []


# -- server checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("10.11.19-MariaDB-0+deb12u1", True),
        ("5.5.5-10.6.2-MariaDB", True),
        ("10.5.23-MariaDB", False),
        ("8.0.36", True),
        ("8.0.0-dmr", False),
        ("5.7.44-log", False),
        ("9.1.0", True),
    ],
)
def test_server_versions_without_skip_locked_are_refused(version: str, ok: bool) -> None:
    if ok:
        check_version(version)
    else:
        with pytest.raises(UnsupportedServerError, match="SKIP LOCKED"):
            check_version(version)


async def test_required_tls_on_a_server_without_tls_fails_clearly(
    make_driver: Callable[..., MySQLDriver], mysql_dsn: str, admin: Any
) -> None:
    async with admin.cursor() as cursor:
        await cursor.execute("SELECT @@have_ssl")
        (have_ssl,) = await cursor.fetchone()
    if have_ssl == "YES":
        pytest.skip("the test server offers TLS")
    driver = make_driver(dsn=mysql_dsn.split("?")[0] + "?ssl_mode=required")
    with pytest.raises(ConfigurationError, match="requires TLS"):
        await driver.connect()
    assert not driver.connected


async def _send_receipt(order_id: int) -> None:
    """Task body for the dispatch test (never runs here)."""


async def test_core_dispatch_with_connection_joins_the_callers_transaction(
    driver: MySQLDriver, connect_raw: Callable[..., Any]
) -> None:
    from asynctasq import task

    send_receipt = task(queue="q", driver=driver)(_send_receipt)
    conn = await connect_raw(autocommit=False)
    try:
        await conn.begin()
        await send_receipt(order_id=1).dispatch(connection=conn)
        await conn.rollback()
        assert await driver.dequeue(["q"], limit=5, wait=0) == []
        await conn.begin()
        task_id = await send_receipt(order_id=2).dispatch(connection=conn)
        await conn.commit()
        [delivery] = await driver.dequeue(["q"], limit=5, wait=1)
        assert delivery.task_id == task_id
    finally:
        conn.close()
