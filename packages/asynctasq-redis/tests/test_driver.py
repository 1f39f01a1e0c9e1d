"""Redis-specific behaviour beyond the conformance suite, against the real local server."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import statistics
import time
import uuid
import warnings
from importlib.metadata import entry_points
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import MaxConnectionsError

from asynctasq.drivers.base import Failure, OutgoingMessage
from asynctasq_redis import RedisDriver, _dead_letters
from asynctasq_redis._dequeue import _wait_then
from asynctasq_redis._keys import QueueKeys, registry_key
from asynctasq_redis.driver import _entry
from asynctasq_redis.scripts import SCRIPTS


def msg(
    queue: str, *, delay: float = 0.0, vt: float = 30.0, body: bytes = b"{}"
) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, body, delay=delay, visibility_timeout=vt)


# -- construction ----------------------------------------------------------------------
def test_constructor_does_not_connect() -> None:
    driver = RedisDriver(url="redis://127.0.0.1:1", password="secret", db=3, prefix="p")
    assert driver._client is None  # proves nothing was opened
    assert driver.settings.db == 3
    assert not driver.cluster


def test_unknown_setting_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        RedisDriver(no_such_option=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("redis://h:1", False),
        ("rediss://h:1", False),
        ("redis+cluster://h:1", True),
        ("rediss+cluster://h:1", True),
    ],
)
def test_cluster_is_chosen_by_url_scheme(url: str, cluster: bool) -> None:
    assert RedisDriver(url=url).cluster is cluster
    assert RedisDriver(url="redis://h:1", cluster=True).cluster


def test_url_without_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="scheme"):
        RedisDriver(url="localhost:6379")


def test_repr_hides_the_password() -> None:
    text = repr(RedisDriver(url="redis://user:hunter2@h:1/0"))
    assert "hunter2" not in text
    assert "user:***@h:1/0" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://h:6379/0?password=hunter2", "redis://h:6379/0?password=***"),
        ("redis://:hunter2@h:1/0?password=hunter2", "redis://:***@h:1/0?password=***"),
        ("redis://user:hun/ter2@h:1/0", "redis://user:***@h:1/0"),
        ("redis+cluster://:hun#ter2@h:1", "redis+cluster://:***@h:1"),
    ],
)
def test_repr_hides_passwords_in_the_query_and_unencoded_ones(url: str, shown: str) -> None:
    text = repr(RedisDriver(url=url))
    assert "hunter2" not in text and "ter2" not in text
    assert shown in text


def test_a_url_without_scheme_is_refused_without_its_password() -> None:
    with pytest.raises(ValueError, match="scheme") as refused:
        RedisDriver(url="user:hunter2@localhost:6379")
    assert "hunter2" not in str(refused.value)
    assert "user:***@localhost:6379" in str(refused.value)


def test_entry_point_names_the_driver() -> None:
    [ep] = [ep for ep in entry_points(group="asynctasq.drivers") if ep.name == "redis"]
    assert ep.value == "asynctasq_redis:RedisDriver"
    assert ep.load() is RedisDriver


def test_keys_of_a_queue_share_one_hash_tag() -> None:
    keys = QueueKeys.build("pfx", "emails")
    tagged = [keys.ready, keys.delayed, keys.leased, keys.leases, keys.dead, keys.staged]
    assert all(k.startswith("{pfx:emails}:") for k in tagged)


# -- enqueue / dequeue -----------------------------------------------------------------
async def test_a_task_id_with_a_newline_is_refused(redis_driver: RedisDriver) -> None:
    bad = OutgoingMessage("a\nb", "q", b"{}")
    with pytest.raises(ValueError, match="newline"):
        await redis_driver.enqueue(bad)
    with pytest.raises(ValueError, match="newline"):
        await redis_driver.enqueue_many([msg("q"), bad])


async def test_payload_with_newlines_round_trips(redis_driver: RedisDriver) -> None:
    body = b"line 1\nline 2\n\n\x00\xff"
    await redis_driver.enqueue(msg("q", body=body, vt=7.0))
    [d] = await redis_driver.dequeue(["q"], limit=1, wait=0)
    assert (d.payload, d.visibility_timeout) == (body, 7.0)
    await redis_driver.retry(d, delay=0)
    [d] = await redis_driver.dequeue(["q"], limit=1, wait=0)
    assert (d.payload, d.attempts) == (body, 1)
    await redis_driver.dead_letter(d, Failure("E", "m", "t"))
    [dead] = await redis_driver.list_dead_letters(queue="q")
    assert (dead.payload, dead.attempts) == (body, 2)
    assert await redis_driver.retry_dead_letters(queue="q") == 1
    [d] = await redis_driver.dequeue(["q"], limit=1, wait=0)
    assert (d.payload, d.attempts, d.visibility_timeout) == (body, 0, 7.0)


async def test_batch_dequeue_takes_many_in_one_call(redis_driver: RedisDriver) -> None:
    await redis_driver.enqueue_many([msg("q") for _ in range(50)])
    got = await redis_driver.dequeue(["q"], limit=20, wait=0)
    assert len(got) == 20
    assert len(await redis_driver.dequeue(["q"], limit=100, wait=0)) == 30


async def test_enqueue_many_spans_queues_and_big_batches(redis_url: str, prefix: str) -> None:
    driver = RedisDriver(url=redis_url, prefix=prefix, enqueue_batch=7)
    try:
        sent = [msg(f"q{i % 3}") for i in range(50)]
        await driver.enqueue_many(sent)
        got = await driver.dequeue(["q0", "q1", "q2"], limit=100, wait=0)
        assert sorted(d.task_id for d in got) == sorted(m.task_id for m in sent)
        # each queue kept its own order
        for q in ("q0", "q1", "q2"):
            assert [d.task_id for d in got if d.queue == q] == [
                m.task_id for m in sent if m.queue == q
            ]
    finally:
        await driver.close()


async def test_visibility_timeout_is_stored_per_message(redis_driver: RedisDriver) -> None:
    await redis_driver.enqueue(msg("q", vt=12.5))
    await redis_driver.enqueue(msg("q", vt=2.0))
    got = await redis_driver.dequeue(["q"], limit=2, wait=0)
    assert [d.visibility_timeout for d in got] == [12.5, 2.0]


async def test_waiting_dequeue_wakes_within_milliseconds(redis_driver: RedisDriver) -> None:
    latencies = []
    for _ in range(5):
        waiter = asyncio.create_task(redis_driver.dequeue(["q"], limit=1, wait=5.0))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await redis_driver.enqueue(msg("q"))
        [delivery] = await waiter
        latencies.append(time.perf_counter() - started)
        await redis_driver.ack([delivery])
    assert statistics.median(latencies) < 0.02, latencies


async def test_two_blocked_consumers_both_wake_for_a_batch(redis_url: str, prefix: str) -> None:
    drivers = [RedisDriver(url=redis_url, prefix=prefix) for _ in range(2)]
    try:
        waiters = [asyncio.create_task(d.dequeue(["q"], limit=1, wait=5.0)) for d in drivers]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await drivers[0].enqueue_many([msg("q"), msg("q")])
        results = await asyncio.gather(*waiters)
        assert [len(r) for r in results] == [1, 1]
        assert time.monotonic() - started < 0.5
    finally:
        for d in drivers:
            await d.close()


async def test_delayed_message_arrives_on_time_while_waiting(redis_driver: RedisDriver) -> None:
    waiter = asyncio.create_task(redis_driver.dequeue(["q"], limit=1, wait=5.0))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await redis_driver.enqueue(msg("q", delay=0.4))
    got = await waiter
    elapsed = time.monotonic() - started
    assert len(got) == 1
    assert 0.35 <= elapsed < 1.0, elapsed  # when due, not at the 4 s longest block


async def test_multi_queue_wait_wakes_on_any_queue(redis_driver: RedisDriver) -> None:
    waiter = asyncio.create_task(redis_driver.dequeue(["a", "b", "c"], limit=1, wait=5.0))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await redis_driver.enqueue(msg("c"))
    [delivery] = await waiter
    assert delivery.queue == "c"
    assert time.monotonic() - started < 2.0  # woken: the wait was for 5 s


async def test_a_delayed_enqueue_wakes_a_sleeper_but_is_not_counted_twice(
    redis_driver: RedisDriver,
) -> None:
    # The wake-up sentinel a delayed enqueue leaves on an empty ready list is no message.
    await redis_driver.enqueue(msg("q", delay=30))
    await redis_driver.enqueue(msg("q", delay=30))
    [stats] = await redis_driver.stats(["q"])
    assert (stats.ready, stats.delayed) == (0, 2)
    assert await redis_driver.dequeue(["q"], limit=5, wait=0) == []
    await redis_driver.enqueue(msg("q", delay=30))  # a fresh sentinel, taken by nobody
    assert await redis_driver.purge("q") == 3
    [stats] = await redis_driver.stats(["q"])
    assert (stats.ready, stats.delayed) == (0, 0)


async def _stage(driver: RedisDriver, queue: str, *messages: OutgoingMessage) -> None:
    """Leave `messages` in `queue`'s staged list, as a consumer that died between its
    BLMOVE and its dequeue script would."""
    staged = QueueKeys.build(driver.prefix, queue).staged
    await driver.client.rpush(staged, *(_entry(m) for m in messages))


async def test_staged_entries_are_never_lost(redis_driver: RedisDriver) -> None:
    first, second, third = msg("q"), msg("q"), msg("q")
    await _stage(redis_driver, "q", first, second)
    await redis_driver.enqueue(third)
    [stats] = await redis_driver.stats(["q"])
    assert stats.ready == 3
    # staged entries are the oldest: taken first; what is not taken goes back to the front
    [d] = await redis_driver.dequeue(["q"], limit=1, wait=0)
    assert d.task_id == first.task_id
    got = await redis_driver.dequeue(["q"], limit=5, wait=0)
    assert [g.task_id for g in got] == [second.task_id, third.task_id]


async def test_a_woken_consumer_takes_a_staged_entry_first(redis_url: str, prefix: str) -> None:
    taker, sleeper = (
        RedisDriver(url=redis_url, prefix=prefix),
        RedisDriver(url=redis_url, prefix=prefix),
    )
    try:
        waiter = asyncio.create_task(sleeper.dequeue(["q"], limit=1, wait=5.0))
        await asyncio.sleep(0.1)
        await _stage(taker, "q", message := msg("q"))
        await asyncio.sleep(0.1)  # a blocked BLMOVE does not see staged entries
        assert not waiter.done()
        await taker.enqueue(other := msg("q"))
        # the sleeper's own dequeue script finds the staged entry first
        [d] = await waiter
        assert d.task_id == message.task_id
        [d] = await taker.dequeue(["q"], limit=1, wait=1.0)
        assert d.task_id == other.task_id
    finally:
        await taker.close()
        await sleeper.close()


async def test_an_entry_moved_while_its_consumer_is_busy_goes_to_another(
    redis_url: str, prefix: str
) -> None:
    busy, idle = (
        RedisDriver(url=redis_url, prefix=prefix),
        RedisDriver(url=redis_url, prefix=prefix),
    )
    try:
        # `busy` waited on two queues once; its standing waits outlive that dequeue call
        assert await busy.dequeue(["a", "b"], limit=1, wait=0.1) == []
        waiter = asyncio.create_task(idle.dequeue(["a"], limit=1, wait=5.0))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await idle.enqueue(message := msg("a"))
        # Redis hands the entry to `busy`'s older BLMOVE; nobody there is waiting, so it is
        # put back and reaches the consumer that is
        [d] = await waiter
        assert d.task_id == message.task_id
        assert time.monotonic() - started < 0.5
    finally:
        await busy.close()
        await idle.close()


async def test_a_foreign_entry_is_dead_lettered_not_looped_on(redis_driver: RedisDriver) -> None:
    # Something other than the driver pushed to the ready list: the dequeue must neither
    # run it nor fail on every call; it keeps the bytes as a dead letter.
    ready = QueueKeys.build(redis_driver.prefix, "q").ready
    good = msg("q")
    await redis_driver.enqueue(good)
    client = redis_driver.client
    await client.rpush(ready, b"hello", b"id\nnot-a-number\n0\n{}", b"\n1\n0\n{}")
    got = await redis_driver.dequeue(["q"], limit=10, wait=0)
    assert [d.task_id for d in got] == [good.task_id]
    dead = await redis_driver.list_dead_letters(queue="q")
    assert [d.payload for d in dead] == [b"hello", b"id\nnot-a-number\n0\n{}", b"\n1\n0\n{}"]
    assert {d.failure.exception_type for d in dead} == {"asynctasq.errors.MalformedMessageError"}
    assert "not an asynctasq-redis queue entry" in dead[0].failure.message
    # a blocked consumer woken by one keeps waiting instead of raising
    waiter = asyncio.create_task(redis_driver.dequeue(["q"], limit=1, wait=5.0))
    await asyncio.sleep(0.05)
    await client.rpush(ready, b"junk")
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await redis_driver.enqueue(later := msg("q"))
    assert [d.task_id for d in await waiter] == [later.task_id]
    [stats] = await redis_driver.stats(["q"])
    assert stats.dead == 4


# -- leases ----------------------------------------------------------------------------
async def test_expired_leases_are_moved_once_by_many_consumers(redis_url: str, prefix: str) -> None:
    drivers = [RedisDriver(url=redis_url, prefix=prefix) for _ in range(6)]
    try:
        sent = [msg("q", vt=1.0) for _ in range(120)]
        await drivers[0].enqueue_many(sent)
        first = await drivers[0].dequeue(["q"], limit=200, wait=0)
        assert len(first) == 120
        await asyncio.sleep(1.1)
        seen: list[str] = []

        async def consume(driver: RedisDriver) -> None:
            while got := await driver.dequeue(["q"], limit=7, wait=0.3):
                seen.extend(d.task_id for d in got)
                assert {d.attempts for d in got} == {1}

        await asyncio.gather(*(consume(d) for d in drivers))
        assert sorted(seen) == sorted(m.task_id for m in sent)
    finally:
        for d in drivers:
            await d.close()


async def test_cancelled_dequeue_gives_its_messages_back(redis_driver: RedisDriver) -> None:
    message = msg("q")
    await redis_driver.enqueue(message)
    taker = asyncio.create_task(redis_driver.dequeue(["q"], limit=1, wait=0))
    await asyncio.sleep(0)  # the script call is on its way
    taker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taker
    got = await redis_driver.dequeue(["q"], limit=1, wait=2.0)
    assert [(d.task_id, d.attempts) for d in got] == [(message.task_id, 0)]


async def test_cancelled_wait_takes_nothing(redis_driver: RedisDriver) -> None:
    waiter = asyncio.create_task(redis_driver.dequeue(["q"], limit=1, wait=5.0))
    await asyncio.sleep(0.1)  # blocked in the wait
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    message = msg("q")
    await redis_driver.enqueue(message)
    got = await redis_driver.dequeue(["q"], limit=1, wait=1.0)
    assert [(d.task_id, d.attempts) for d in got] == [(message.task_id, 0)]


async def test_release_puts_a_batch_back_in_order_at_the_front(redis_driver: RedisDriver) -> None:
    sent = [msg("q") for _ in range(5)]
    await redis_driver.enqueue_many(sent)
    first = await redis_driver.dequeue(["q"], limit=3, wait=0)
    await redis_driver.release(first)
    again = await redis_driver.dequeue(["q"], limit=5, wait=0)
    assert [d.task_id for d in again] == [m.task_id for m in sent]
    assert {d.attempts for d in again} == {0}


async def test_ack_of_a_batch_spanning_queues(redis_driver: RedisDriver) -> None:
    await redis_driver.enqueue_many([msg("a"), msg("b"), msg("a")])
    got = await redis_driver.dequeue(["a", "b"], limit=3, wait=0)
    await redis_driver.ack(got)
    stats = await redis_driver.stats(["a", "b"])
    assert [(s.ready, s.in_flight) for s in stats] == [(0, 0), (0, 0)]
    keys = [redis_driver._keys[q] for q in ("a", "b")]  # the keys are internal
    assert (
        await redis_driver.client.exists(*(k.leases for k in keys), *(k.leased for k in keys)) == 0
    )


async def test_batches_larger_than_one_server_command_settle_exactly(
    redis_driver: RedisDriver,
) -> None:
    """The scripts settle a batch with a few commands over slices of it (Lua's unpack has a
    limit near 8,000 values): 4,500 leases cross every slice boundary, and a stale receipt
    and a repeated delivery among them change only what they should."""
    n = 4500
    await redis_driver.enqueue_many([msg("q") for _ in range(n)])
    got = await redis_driver.dequeue(["q"], limit=n, wait=0)
    assert len(got) == n
    assert len({d.receipt for d in got}) == n
    await redis_driver.extend(got, 600)
    keys = redis_driver._keys["q"]  # the keys are internal
    expiries = [s for _, s in await redis_driver.client.zrange(keys.leased, 0, -1, withscores=True)]
    assert len(expiries) == n and max(expiries) - min(expiries) < 1000  # one new expiry
    assert min(expiries) > time.time() * 1000 + 500_000
    stale = dataclasses.replace(got[-1], receipt=b"999999999")
    await redis_driver.ack([*got[:-1], got[0], stale])
    stats = (await redis_driver.stats(["q"]))[0]
    assert (stats.ready, stats.in_flight) == (0, 1)  # the stale receipt acked nothing
    await redis_driver.ack([got[-1]])
    assert await redis_driver.client.exists(keys.leases, keys.leased) == 0


async def test_stats_count_expired_leases_and_due_delays_as_ready(
    redis_driver: RedisDriver,
) -> None:
    # Lease and delay long enough for the first look even on a busy machine.
    await redis_driver.enqueue(msg("q", vt=1.0))
    await redis_driver.enqueue(msg("q", delay=1.0))
    await redis_driver.dequeue(["q"], limit=1, wait=0)
    [before] = await redis_driver.stats(["q"])
    assert (before.ready, before.delayed, before.in_flight) == (0, 1, 1)
    await asyncio.sleep(1.1)
    [after] = await redis_driver.stats(["q"])
    assert (after.ready, after.delayed, after.in_flight) == (2, 0, 0)


async def test_purge_counts_and_leaves_leased_messages(redis_driver: RedisDriver) -> None:
    await redis_driver.enqueue_many([msg("q") for _ in range(3)])
    await redis_driver.enqueue_many([msg("q", delay=60) for _ in range(2)])
    [leased] = await redis_driver.dequeue(["q"], limit=1, wait=0)
    assert await redis_driver.purge("q") == 4
    [stats] = await redis_driver.stats(["q"])
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 1)
    await redis_driver.ack([leased])


# -- dead letters ----------------------------------------------------------------------
async def _dead(driver: RedisDriver, queue: str, note: str) -> str:
    message = msg(queue, body=note.encode())
    await driver.enqueue(message)
    [delivery] = await driver.dequeue([queue], limit=1, wait=1.0)
    await driver.retry(delivery, delay=0)
    [delivery] = await driver.dequeue([queue], limit=1, wait=1.0)
    await driver.dead_letter(delivery, Failure("mod.Err", note, f"tb {note} \u2603"))
    return message.task_id


async def test_dead_letters_across_queues(redis_driver: RedisDriver) -> None:
    a = await _dead(redis_driver, "qa", "a")
    b = await _dead(redis_driver, "qb", "b")
    c = await _dead(redis_driver, "qa", "c")
    listed = await redis_driver.list_dead_letters()
    assert [d.task_id for d in listed] == [a, b, c]  # oldest first, across queues
    assert [d.attempts for d in listed] == [2, 2, 2]
    assert listed[1].failure == Failure("mod.Err", "b", "tb b \u2603")
    assert listed[1].payload == b"b"
    assert abs(listed[0].failed_at.timestamp() - time.time()) < 5
    assert [d.task_id for d in await redis_driver.list_dead_letters(limit=2)] == [a, b]
    assert await redis_driver.list_dead_letters(task_ids=[]) == []
    assert [d.queue for d in await redis_driver.list_dead_letters(task_ids=[b, "nope"])] == ["qb"]
    [stats_a] = await redis_driver.stats(["qa"])
    assert stats_a.dead == 2
    assert await redis_driver.retry_dead_letters() == 3
    got = await redis_driver.dequeue(["qa", "qb"], limit=5, wait=0)
    assert sorted(d.task_id for d in got) == sorted([a, b, c])
    assert {d.attempts for d in got} == {0}


async def test_many_queue_names_cost_no_script_call_each(
    redis_driver: RedisDriver, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Anyone who can write to Redis can add names to the registry: listing every queue's
    # dead letters runs the listing script only where there are some.
    a = await _dead(redis_driver, "qa", "a")
    names = [f"fake-{n}" for n in range(30_000)]
    await redis_driver.client.sadd(registry_key(prefix), *names)
    calls: list[object] = []
    listing = _dead_letters._LIST

    async def counted(*args: Any) -> Any:
        calls.append(args)
        return await listing(*args)

    monkeypatch.setattr(_dead_letters, "_LIST", counted)
    assert [d.task_id for d in await redis_driver.list_dead_letters()] == [a]
    assert len(calls) == 1
    assert await redis_driver.purge_dead_letters() == 1


async def test_retry_and_purge_all_dead_letters_in_batches(redis_url: str, prefix: str) -> None:
    driver = RedisDriver(url=redis_url, prefix=prefix, move_batch=2)
    try:
        ids = [await _dead(driver, "q", str(i)) for i in range(5)]
        assert await driver.retry_dead_letters(queue="q") == 5
        got = await driver.dequeue(["q"], limit=10, wait=0)
        assert sorted(d.task_id for d in got) == sorted(ids)
        for d in got:
            await driver.dead_letter(d, Failure("E", "m", "t"))
        assert await driver.purge_dead_letters() == 5
        assert await driver.list_dead_letters() == []
        assert await driver.client.keys(f"{{{prefix}:*dead*") == []
    finally:
        await driver.close()


async def test_settling_after_dead_letter_does_nothing(redis_driver: RedisDriver) -> None:
    await redis_driver.enqueue(msg("q"))
    [d] = await redis_driver.dequeue(["q"], limit=1, wait=0)
    await redis_driver.dead_letter(d, Failure("E", "m", "t"))
    await redis_driver.ack([d])
    await redis_driver.retry(d, delay=0)
    await redis_driver.release([d])
    await redis_driver.dead_letter(d, Failure("E2", "m2", "t2"))
    [dead] = await redis_driver.list_dead_letters(queue="q")
    assert dead.failure.exception_type == "E"
    assert await redis_driver.dequeue(["q"], limit=1, wait=0) == []


def test_a_driver_made_at_import_time_works_across_event_loops(redis_url: str) -> None:
    driver = RedisDriver(url=redis_url, prefix=f"test-{uuid.uuid4().hex[:12]}")

    async def round_trip(close: bool) -> int:
        await driver.enqueue(msg("q"))
        got = await driver.dequeue(["q"], limit=1, wait=1.0)
        await driver.ack(got)
        # an idle multi-queue wait leaves standing waits behind in this loop
        assert await driver.dequeue(["a", "b"], limit=1, wait=0.05) == []
        if close:
            await driver.close()
        return len(got)

    with warnings.catch_warnings():
        # the first loop's connections are dropped unclosed when the loop is gone
        warnings.simplefilter("ignore", ResourceWarning)
        assert asyncio.run(round_trip(close=False)) == 1
        assert asyncio.run(round_trip(close=True)) == 1
        gc.collect()
    assert asyncio.run(round_trip(close=True)) == 1  # close() then use again


async def test_callers_wait_for_a_free_connection(redis_url: str, prefix: str) -> None:
    driver = RedisDriver(url=redis_url, prefix=prefix, max_connections=2, pool_timeout=5.0)
    try:
        sent = [msg("q") for _ in range(40)]
        await asyncio.gather(*(driver.enqueue(m) for m in sent))  # 40 callers, 2 connections
        got = await driver.dequeue(["q"], limit=50, wait=0)
        assert len(got) == 40
    finally:
        await driver.close()


async def test_pool_timeout_when_every_connection_stays_busy(redis_url: str, prefix: str) -> None:
    driver = RedisDriver(url=redis_url, prefix=prefix, max_connections=2, pool_timeout=0.2)
    try:
        waiters = [asyncio.create_task(driver.dequeue(["q"], limit=1, wait=1.0)) for _ in "ab"]
        await asyncio.sleep(0.1)  # both connections blocked in a wait
        with pytest.raises(MaxConnectionsError, match="max_connections"):
            await driver.enqueue(msg("other"))
        assert await asyncio.gather(*waiters) == [[], []]
        await driver.enqueue(msg("other"))  # free again
    finally:
        await driver.close()


async def test_the_idle_wait_survives_a_connection_killed_in_the_pool(
    redis_url: str, prefix: str
) -> None:
    name = f"victim-{uuid.uuid4().hex[:8]}"
    driver = RedisDriver(url=redis_url, prefix=prefix, client_name=name, health_check_interval=0)
    admin = Redis.from_url(redis_url)
    try:
        await driver.connect()
        killed = 0
        for c in await admin.client_list():
            if c.get("name") == name:
                killed += await admin.execute_command("CLIENT", "KILL", "ID", c["id"])
        assert killed == 1
        # the wait-and-take write goes out on the dead connection first: it is retried on
        # a fresh one, not surfaced as an outage
        keys = QueueKeys.build(prefix, "q")
        message = msg("q")
        await admin.rpush(keys.ready, _entry(message))
        reply = await _wait_then(
            driver.client,
            ("BLMOVE", keys.ready, keys.staged, "LEFT", "RIGHT", 1),
            ("EVALSHA", SCRIPTS["DEQUEUE"].sha, 1, keys.tag, 1, 100),
        )
        assert reply[2].split(b"\n", 1)[0] == message.task_id.encode()
    finally:
        await admin.aclose()
        await driver.close()
