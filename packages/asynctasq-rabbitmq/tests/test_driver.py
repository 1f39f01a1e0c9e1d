"""RabbitMQ-specific behaviour beyond the conformance suite, against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pamqp.commands import Basic

from asynctasq.drivers.base import Delivery, Failure, OutgoingMessage
from asynctasq.worker import Worker
from asynctasq_rabbitmq import RabbitMQDriver
from asynctasq_rabbitmq.dead_letters import (
    MAX_MESSAGE_BYTES,
    MAX_TRACEBACK_BYTES,
    MAX_TYPE_BYTES,
)
from asynctasq_rabbitmq.messages import (
    ATTEMPTS,
    EXCEPTION_TYPE,
    FAILED_AT,
    MAX_COUNT,
    QUEUE,
    TRACEBACK,
)

MakeDriver = Callable[..., RabbitMQDriver]


def _msg(queue: str, *, delay: float = 0.0, body: bytes | None = None) -> OutgoingMessage:
    task_id = str(uuid.uuid4())
    return OutgoingMessage(task_id, queue, body or task_id.encode(), delay=delay)


async def _take(
    driver: RabbitMQDriver, queues: Sequence[str], want: int, *, within: float = 5.0
) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < want and (left := deadline - time.monotonic()) > 0:
        got += await driver.dequeue(queues, limit=want - len(got), wait=min(left, 1.0))
    return got


# -- settings --------------------------------------------------------------------------------
def test_settings_are_validated_without_connecting() -> None:
    driver = RabbitMQDriver(url="amqp://nobody:nothing@127.0.0.1:1/", prefetch_count=4)
    assert driver.prefetch_count == 4
    bad_settings: list[dict[str, Any]] = [
        {"queue_type": "stream"},
        {"prefetch_count": 0},
        {"consumer_timeout": 0.0},
        # a lease past ten years: the worker would refuse every delivery as malformed
        {"consumer_timeout": 1e9},
        {"consumer_timeout": float("inf")},
        {"publish_timeout": float("nan")},
    ]
    for bad in bad_settings:
        with pytest.raises(ValueError, match=next(iter(bad))):
            RabbitMQDriver(**bad)
    with pytest.raises(TypeError, match="bogus"):
        RabbitMQDriver(bogus=1)  # type: ignore[call-arg]


def test_entry_point_names_the_driver() -> None:
    [entry] = importlib.metadata.entry_points(group="asynctasq.drivers", name="rabbitmq")
    assert entry.load() is RabbitMQDriver


# -- delays ----------------------------------------------------------------------------------
async def test_delayed_task_reaches_a_worker_started_later(make_driver: MakeDriver) -> None:
    producer = make_driver()
    message = _msg("later", delay=1.0)
    sent_at = time.monotonic()
    await producer.enqueue(message)
    await producer.close()  # the delay lives on the broker, not in the producer
    await asyncio.sleep(0.3)
    worker = make_driver()
    early = await worker.dequeue(["later"], limit=1, wait=0.3)
    if time.monotonic() - sent_at < 1.0:  # the whole wait fell before the delay ran out
        assert early == []
    # (A loaded host can take that long to connect the worker: then the task may be due.)
    [delivery] = early or await _take(worker, ["later"], 1, within=4.0)
    waited = time.monotonic() - sent_at
    assert delivery.task_id == message.task_id
    assert 1.0 <= waited < 2.5


async def test_delays_come_out_in_delay_order(make_driver: MakeDriver) -> None:
    driver = make_driver()
    seconds = [0.9, 0.1, 0.5, 0.3, 0.7, 0.0]
    sent = [_msg("order", delay=s) for s in seconds]
    await driver.enqueue_many(sent)
    got = await _take(driver, ["order"], len(sent), within=5.0)
    by_id = {m.task_id: m.delay for m in sent}
    assert [by_id[d.task_id] for d in got] == sorted(seconds)


# -- attempts and leases ---------------------------------------------------------------------
async def test_every_lost_connection_counts_a_delivery(make_driver: MakeDriver) -> None:
    message = _msg("crashy")
    driver = make_driver(queue_type="quorum")
    await driver.enqueue(message)
    seen = []
    for _ in range(3):
        [delivery] = await _take(driver, ["crashy"], 1)
        seen.append(delivery.attempts)
        await driver.close()  # as a killed worker: the broker takes the message back
        driver = make_driver(queue_type="quorum")
    [delivery] = await _take(driver, ["crashy"], 1)
    await driver.retry(delivery, delay=0)
    [again] = await _take(driver, ["crashy"], 1)
    assert [*seen, delivery.attempts, again.attempts] == [0, 1, 2, 3, 4]


async def test_classic_queues_count_every_lost_connection_too(make_driver: MakeDriver) -> None:
    message = _msg("classic")
    driver = make_driver(queue_type="classic")
    await driver.enqueue(message)
    seen = []
    for _ in range(3):
        [delivery] = await _take(driver, ["classic"], 1)
        seen.append(delivery.attempts)
        await driver.close()  # the broker flags the redelivery; the driver makes it a count
        driver = make_driver(queue_type="classic")
    [delivery] = await _take(driver, ["classic"], 1)
    await driver.retry(delivery, delay=0)
    [again] = await _take(driver, ["classic"], 1)
    assert [*seen, delivery.attempts, again.attempts] == [0, 1, 2, 3, 4]
    assert again.task_id == message.task_id and again.payload == message.payload


@pytest.mark.parametrize(("existing", "setting"), [("quorum", "classic"), ("classic", "quorum")])
async def test_a_work_queue_of_the_other_type_is_used_as_it_is(
    make_driver: MakeDriver, existing: str, setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade that changes the default type must not stop workers on existing queues."""
    old = make_driver(queue_type=existing)
    message = _msg("typed")
    await old.enqueue(message)
    await old.close()
    driver = make_driver(queue_type=setting)
    await driver.enqueue(_msg("typed"))
    [first, _] = await _take(driver, ["typed"], 2)
    assert first.task_id == message.task_id and first.attempts == 0
    assert "exists as a " + existing in caplog.text
    await driver.close()  # a lost lease still counts, whatever the type
    driver = make_driver(queue_type=setting)
    got = await _take(driver, ["typed"], 2)
    assert sorted(d.attempts for d in got) == [1, 1]
    await driver.ack(got)


async def test_close_gives_back_prefetched_messages_uncounted(make_driver: MakeDriver) -> None:
    driver = make_driver(prefetch_count=5)
    await driver.enqueue_many([_msg("buffered") for _ in range(5)])
    [taken] = await _take(driver, ["buffered"], 1)
    assert driver._consumer is not None
    await asyncio.sleep(0.2)
    assert driver._consumer.in_flight("buffered") == 5  # 1 handed out + 4 buffered
    await driver.close()
    fresh = make_driver()
    got = await _take(fresh, ["buffered"], 5)
    attempts = {d.task_id: d.attempts for d in got}
    assert len(attempts) == 5
    assert attempts.pop(taken.task_id) == 1  # only the one handed out was a delivery
    assert set(attempts.values()) == {0}


async def test_prefetch_follows_the_worker_concurrency(make_driver: MakeDriver) -> None:
    busy, idle = make_driver(), make_driver()
    await busy.enqueue_many([_msg("fair") for _ in range(10)])
    assert len(await _take(busy, ["fair"], 3)) == 3  # concurrency 3: prefetch 6
    await asyncio.sleep(0.2)
    [held] = await busy.stats(["fair"])
    assert (held.ready, held.in_flight) == (4, 6)  # 3 handed out + 3 buffered, 4 left
    assert len(await _take(idle, ["fair"], 10, within=2.0)) == 4  # the rest, not hoarded
    assert len(await _take(busy, ["fair"], 3)) == 3  # the next ones were already there


async def test_stale_receipts_after_a_channel_loss_are_ignored(make_driver: MakeDriver) -> None:
    driver = make_driver()
    await driver.enqueue_many([_msg("stale") for _ in range(2)])
    old = await _take(driver, ["stale"], 2)
    assert driver._consumer is not None
    channel = old[0].receipt.channel
    await channel.close()  # the lease ends; aio-pika reopens the channel and we resubscribe
    again = await _take(driver, ["stale"], 2)
    assert sorted(d.task_id for d in again) == sorted(d.task_id for d in old)
    assert {d.attempts for d in again} == {1}
    await driver.ack(old)  # ignored: acking a dead channel's tags must not break anything
    await driver.retry(old[0], delay=0)
    await driver.ack(again)
    assert await driver.dequeue(["stale"], limit=2, wait=0.5) == []


async def test_idle_consumer_gets_a_new_task_within_milliseconds(
    make_driver: MakeDriver,
) -> None:
    producer, worker = make_driver(), make_driver()
    await producer.enqueue(_msg("fast"))
    await worker.ack(await _take(worker, ["fast"], 1))  # subscribed
    latencies = []
    for _ in range(15):
        waiter = asyncio.create_task(worker.dequeue(["fast"], limit=1, wait=5.0))
        await asyncio.sleep(0.02)
        sent = time.perf_counter()
        await producer.enqueue(_msg("fast"))
        got = await waiter
        latencies.append(time.perf_counter() - sent)
        await worker.ack(got)
    # Measured from the publisher's confirm: usually ~1 ms; loose bound for a busy machine.
    assert statistics.median(latencies) < 0.05, latencies


# -- dead letters, stats, purge --------------------------------------------------------------
async def test_dead_letter_headers_are_readable_on_the_broker(make_driver: MakeDriver) -> None:
    driver = make_driver()
    await driver.enqueue(_msg("dl"))
    [delivery] = await _take(driver, ["dl"], 1)
    long_traceback = "Traceback (most recent call last):\n" + "  frame\n" * 50_000 + "KeyError: 'x'"
    await driver.dead_letter(delivery, Failure("builtins.KeyError", "'x'", long_traceback))
    [dead] = await driver.list_dead_letters(queue="dl")
    assert dead.failure.traceback.endswith("KeyError: 'x'")
    assert len(dead.failure.traceback.encode()) <= MAX_TRACEBACK_BYTES + 20
    connection = await driver._amqp()
    channel = await connection.channel()
    try:
        raw = await channel.basic_get(driver._topology.dead_queue("dl"), no_ack=False)
        assert isinstance(raw.delivery, Basic.GetOk)
        headers = raw.header.properties.headers or {}
        assert headers[EXCEPTION_TYPE] == "builtins.KeyError"
        assert headers[QUEUE] == "dl"
        assert FAILED_AT in headers and TRACEBACK in headers
    finally:
        await channel.close()  # requeues the peeked message
    assert len(await driver.list_dead_letters(queue="dl")) == 1


async def test_forged_dead_letter_times_read_back_timezone_aware(make_driver: MakeDriver) -> None:
    """Anyone who can publish to the dead-letter queue writes its time header: a time
    without a zone is read as UTC and one that is no time as the epoch, so listings that
    sort or compare them never mix naive and aware datetimes."""
    driver = make_driver()
    await driver.enqueue(_msg("forged-dl"))
    [delivery] = await _take(driver, ["forged-dl"], 1)
    await driver.dead_letter(delivery, Failure("builtins.KeyError", "'x'", ""))  # declares it
    channel = await driver._private_channel()
    forged = (
        ("naive", "2030-01-02T03:04:05"),
        ("garbage", "not a time"),
        ("past-9999-in-utc", "9999-12-31T23:59:59-14:00"),
        ("year-1", "0001-01-01T00:00:00+14:00"),
    )
    for task_id, stamp in forged:
        await channel.basic_publish(
            b"{}",
            routing_key=driver._topology.dead_queue("forged-dl"),
            properties=Basic.Properties(
                message_id=task_id, headers={FAILED_AT: stamp}, delivery_mode=2
            ),
        )
    await channel.close()
    dead = {d.task_id: d for d in await driver.list_dead_letters(queue="forged-dl")}
    assert dead["naive"].failed_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert dead["garbage"].failed_at == datetime.fromtimestamp(0, UTC)
    # Times no local clock can show read as unknown: a listing converts each to local time.
    assert dead["past-9999-in-utc"].failed_at == datetime.fromtimestamp(0, UTC)
    assert dead["year-1"].failed_at == datetime.fromtimestamp(0, UTC)
    assert dead[delivery.task_id].failed_at.tzinfo is not None
    assert sorted(dead.values(), key=lambda d: d.failed_at)[0].task_id == "garbage"


async def test_a_dead_letter_of_wide_characters_fits_one_frame(make_driver: MakeDriver) -> None:
    """Texts of four-byte characters, each as long as a character limit would have let
    through: cut by UTF-8 bytes, the headers stay under the broker's frame size, so the
    publish does not close the connection and the error is kept (its start, its end)."""
    driver = make_driver()
    for _ in range(2):
        await driver.enqueue(_msg("wide"))
    first, second = await _take(driver, ["wide"], 2)
    wide = "\U0001f600"
    failure = Failure(
        "tasks." + wide * 4_000,
        "TypeError: got an unexpected keyword argument '" + wide * 40_000 + "'",
        "Traceback (most recent call last):\n" + wide * 40_000 + "\nTypeError: boom",
    )
    await driver.dead_letter(first, failure)
    await driver.dead_letter(second, Failure("x.E", "lone \udcff surrogate", "tb \ud800"))
    dead = {d.task_id: d for d in await driver.list_dead_letters(queue="wide")}
    kept = dead[first.task_id].failure
    assert kept.message.startswith("TypeError: got an unexpected keyword argument")
    assert kept.traceback.endswith("\nTypeError: boom")
    assert kept.exception_type.startswith("tasks." + wide)
    assert len(kept.exception_type.encode()) <= MAX_TYPE_BYTES + 20
    assert len(kept.message.encode()) <= MAX_MESSAGE_BYTES + 20
    assert len(kept.traceback.encode()) <= MAX_TRACEBACK_BYTES + 20
    assert dead[second.task_id].failure.message == "lone \\udcff surrogate"
    # the connection the dead letters went through is still up: work goes on
    await driver.enqueue(_msg("wide"))
    assert len(await _take(driver, ["wide"], 1)) == 1


async def test_dead_letters_across_queues_retry_and_purge_all(make_driver: MakeDriver) -> None:
    driver = make_driver()
    for queue in ("a", "b", "b"):
        await driver.enqueue(_msg(queue))
        [delivery] = await _take(driver, [queue], 1)
        await driver.dead_letter(delivery, Failure("x.E", queue, "tb"))
    assert len(await driver.list_dead_letters()) == 3
    assert len(await driver.list_dead_letters(limit=2)) == 2
    assert await driver.retry_dead_letters(queue="a") == 1
    assert len(await _take(driver, ["a"], 1)) == 1
    assert await driver.purge_dead_letters() == 2
    assert await driver.list_dead_letters() == []


async def test_listing_dead_letters_reads_only_the_oldest_it_returns(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dead-letter queue may hold millions: a listing of 3 must not fetch them all.
    from asynctasq_rabbitmq import dead_letters

    driver = make_driver(prefetch_count=20)
    await driver.enqueue_many([_msg("old") for _ in range(12)])
    deliveries = await _take(driver, ["old"], 12)
    ids = [d.task_id for d in deliveries]
    for delivery in deliveries:
        await driver.dead_letter(delivery, Failure("x.E", "m", "tb"))
    held: list[int] = []
    real_scan = dead_letters.scan

    @contextlib.asynccontextmanager
    async def counting(*args: Any) -> AsyncIterator[Any]:
        async with real_scan(*args) as scanned:
            held.append(len(scanned.messages))
            yield scanned

    monkeypatch.setattr(dead_letters, "scan", counting)
    assert [d.task_id for d in await driver.list_dead_letters(limit=3)] == ids[:3]
    assert held == [3]
    # By task id every letter is read; none is lost by either read.
    assert [d.task_id for d in await driver.list_dead_letters(task_ids=[ids[-1]])] == ids[-1:]
    assert held == [3, 12]
    assert len(await driver.list_dead_letters(limit=100)) == 12


async def test_stats_are_exact_within_one_process(make_driver: MakeDriver) -> None:
    driver = make_driver()
    await driver.enqueue_many([_msg("st") for _ in range(3)])
    await driver.enqueue(_msg("st", delay=60))
    [first] = await _take(driver, ["st"], 1)
    await driver.dead_letter(first, Failure("x.E", "m", "tb"))
    [leased] = await _take(driver, ["st"], 1)
    await asyncio.sleep(0.2)
    [stats] = await driver.stats(["st"])
    # Concurrency 1, prefetch 2: the third message is buffered here, in flight, not ready.
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 1, 2, 1)
    await driver.ack([leased])


async def test_purge_also_drops_what_this_process_buffered(make_driver: MakeDriver) -> None:
    driver = make_driver(prefetch_count=5)
    await driver.enqueue_many([_msg("p") for _ in range(5)])
    [taken] = await _take(driver, ["p"], 1)
    await asyncio.sleep(0.2)
    assert await driver.purge("p") == 4
    assert await driver.dequeue(["p"], limit=5, wait=0.3) == []
    await driver.ack([taken])


# -- topology ---------------------------------------------------------------------------------
async def test_a_queue_deleted_behind_our_back_is_declared_again(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver()
    await driver.enqueue(_msg("gone"))
    connection = await driver._amqp()
    channel = await connection.channel()
    await channel.queue_delete(driver._topology.work_queue("gone"))
    await channel.close()
    message = _msg("gone")
    await driver.enqueue(message)  # unroutable -> declare again -> publish again
    other = make_driver()
    assert [d.task_id for d in await _take(other, ["gone"], 1)] == [message.task_id]


async def test_queue_names_come_from_the_broker_registry(make_driver: MakeDriver) -> None:
    first, second = make_driver(), make_driver()
    await first.enqueue(_msg("reg-a"))
    await second.enqueue(_msg("reg-a"))
    await second.enqueue(_msg("reg-b"))
    stranger = make_driver()
    assert await stranger.queue_names() == ["reg-a", "reg-b"]


async def test_hostile_registry_entries_are_left_out(make_driver: MakeDriver) -> None:
    """Anyone who can publish can add to the registry of queue names: an entry that is not
    UTF-8, not a queue name, or too long for the broker's names is not listed, and neither
    listings nor the first dispatch to a new queue fail on it."""
    driver = make_driver()
    await driver.enqueue(_msg("reg-ok"))
    channel = await driver._private_channel()
    for body in (b"\xff\xfe-not-utf-8", b"has space", b"q" * 300, "\u00e9".encode() * 150):
        await channel.basic_publish(
            body,
            routing_key=driver._topology.registry_queue,
            properties=Basic.Properties(delivery_mode=2),
        )
    await channel.close()
    fresh = make_driver()
    await fresh.enqueue(_msg("reg-new"))  # scans the registry first
    assert await fresh.queue_names() == ["reg-new", "reg-ok"]
    assert await fresh.list_dead_letters() == []
    assert [s.queue for s in await fresh.stats(await fresh.queue_names())] == ["reg-new", "reg-ok"]


async def test_a_queue_name_rabbitmq_cannot_take_is_refused_by_name(
    make_driver: MakeDriver,
) -> None:
    """Queue names pass one rule on every driver, but AMQP names hold 255 bytes and its
    client takes only ASCII letters, digits and a few marks: a clear error, not the client's
    'Invalid value for queue'."""
    driver = make_driver()
    with pytest.raises(ValueError, match=r"'caf\u00e9' cannot be a RabbitMQ queue.*ASCII"):
        await driver.enqueue(_msg("caf\u00e9"))
    long_prefix = make_driver(queue_prefix="p" * 60 + ".")
    with pytest.raises(ValueError, match=r"too long for RabbitMQ.*at most 185 here"):
        await long_prefix.enqueue(_msg("q" * 200))
    await driver.enqueue(_msg("q" * 200))  # with the test's short prefix it fits
    assert [d.queue for d in await _take(driver, ["q" * 200], 1)] == ["q" * 200]


async def test_a_worker_on_a_queue_rabbitmq_cannot_hold_stops_at_start(
    make_driver: MakeDriver,
) -> None:
    """Not a fetch error retried for ever: the name never becomes valid."""
    worker = Worker(make_driver(), queues=["fine", "caf\u00e9"], burst=True)
    with pytest.raises(ValueError, match="cannot be a RabbitMQ queue"):
        await asyncio.wait_for(worker.run(), 5)


async def test_a_huge_attempts_header_is_capped_and_dead_lettered(make_driver: MakeDriver) -> None:
    """A count past what AMQP encodes (anyone may publish one) used to make every republish
    fail: the message was neither run nor dead-lettered, held unacked on every start."""
    driver = make_driver()
    await driver.enqueue(_msg("big-attempts"))  # declares the queue
    [first] = await _take(driver, ["big-attempts"], 1)
    await driver.ack([first])
    channel = await driver._private_channel()
    for task_id, count in (("huge", "1" + "0" * 30 + "1"), ("negative", "-" + "9" * 30)):
        await channel.basic_publish(
            b"{}",
            routing_key=driver._topology.work_queue("big-attempts"),
            properties=Basic.Properties(
                message_id=task_id, headers={ATTEMPTS: count}, delivery_mode=2
            ),
        )
    await channel.close()
    taken = {d.task_id: d for d in await _take(driver, ["big-attempts"], 2)}
    assert taken["huge"].attempts == MAX_COUNT
    assert taken["negative"].attempts == 0
    await driver.dead_letter(taken["huge"], Failure("builtins.ValueError", "too many", ""))
    await driver.retry(taken["negative"], delay=0)
    [again] = await _take(driver, ["big-attempts"], 1)
    assert (again.task_id, again.attempts) == ("negative", 1)
    await driver.ack([again])
    [dead] = await driver.list_dead_letters(queue="big-attempts")
    assert (dead.task_id, dead.attempts) == ("huge", MAX_COUNT)


async def test_enqueue_many_confirms_everything(make_driver: MakeDriver) -> None:
    driver = make_driver()
    sent = [
        _msg("bulk-a" if i % 2 else "bulk-b", delay=0.2 if i % 5 == 0 else 0) for i in range(2500)
    ]
    await driver.enqueue_many(sent)
    got = await _take(driver, ["bulk-a", "bulk-b"], len(sent), within=20.0)
    assert sorted(d.task_id for d in got) == sorted(m.task_id for m in sent)
    await driver.ack(got)


async def test_a_refused_connection_is_reported_once_not_also_by_aiormq(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiormq logged "error when creating transport" at ERROR and then raised the same error,
    which the caller reports: the command line showed a stray line before its own."""
    import logging
    import socket

    from asynctasq_rabbitmq import RabbitMQDriver

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = RabbitMQDriver(url=f"amqp://guest:guest@127.0.0.1:{port}/")
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectionError, match="Connect call"):
        await asyncio.wait_for(driver.connect(), 30)
    await driver.close()
    assert "error when creating transport" not in caplog.text


async def test_a_flooded_registry_is_read_up_to_its_bound(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone who can publish can add entries by the million: a read takes a bounded number
    (the oldest, so names registered early are among them) and says the rest were left."""
    from asynctasq_rabbitmq import registry

    monkeypatch.setattr(registry, "MAX_ENTRIES", 3)
    driver = make_driver()
    await driver.enqueue(_msg("flood-a"))
    await driver.enqueue(_msg("flood-b"))
    channel = await driver._private_channel()
    for n in range(5):
        await channel.basic_publish(
            f"junk-{n}".encode(),
            routing_key=driver._topology.registry_queue,
            properties=Basic.Properties(delivery_mode=2),
        )
    await channel.close()
    with caplog.at_level(logging.WARNING, logger="asynctasq_rabbitmq.registry"):
        names = await make_driver().queue_names()
    assert names[:2] == ["flood-a", "flood-b"] and len(names) == 3
    assert any("more than 3 entries" in r.getMessage() for r in caplog.records)
