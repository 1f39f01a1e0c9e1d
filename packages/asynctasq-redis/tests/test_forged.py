"""Bytes written to Redis behind the driver's back (anyone who can write to the server can):
one forged entry or record is dead-lettered or passed over, never failing a dequeue, a
settle or a listing, and never costing the messages fetched with it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import MALFORMED_LEASE, Delivery, Failure, OutgoingMessage, StatusWrite
from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver, _dequeue
from asynctasq_redis._keys import QueueKeys, log_tag, registry_key, status_tag

MALFORMED = "asynctasq.errors.MalformedMessageError"

# Entries the previous parse leased (Lua's tonumber takes them) but the client could not read
# (int() refuses the numbers, decode() the ids), or that made the script itself fail (NaN).
POISON = [
    b"poison-vt\n1500.5\n0\n{}",
    b"poison-hex\n0x10\n0\n{}",
    b"poison-space\n 30000\n0\n{}",
    b"poison-exp\n1e3\n0\n{}",
    b"poison-inf\ninf\n0\n{}",
    b"poison-nan\nnan\n0\n{}",
    b"poison-neg\n-5\n0\n{}",
    b"poison-count\n30000\n1.5\n{}",
    b"poison-count-neg\n30000\n-1\n{}",
    b"poison-long\n" + b"9" * 400 + b"\n0\n{}",
    b"poison-long-count\n30000\n" + b"9" * 40 + b"\n{}",
    b"\xff\xfepoison\n30000\n0\n{}",  # not UTF-8
    b"\xc0\xafpoison\n30000\n0\n{}",  # an overlong '/'
    b"\xed\xa0\x80poison\n30000\n0\n{}",  # a UTF-16 surrogate
    b"\xf4\x90\x80\x80poison\n30000\n0\n{}",  # past U+10FFFF
    b"poison\xe2\x82\n30000\n0\n{}",  # cut short
]


def msg(queue: str, task_id: str | None = None, vt: float = 30.0) -> OutgoingMessage:
    return OutgoingMessage(task_id or str(uuid.uuid4()), queue, b"{}", visibility_timeout=vt)


def keys(driver: RedisDriver, queue: str) -> QueueKeys:
    return QueueKeys.build(driver.prefix, queue)


def field(delivery: Delivery) -> bytes:
    """The field a lease's record is kept under in ``leases`` (and its member in ``leased``):
    ``\\n<token>\\n<task id>``."""
    token = delivery.receipt
    raw = token if isinstance(token, bytes) else b"%d" % token
    return b"\n" + raw + b"\n" + delivery.task_id.encode()


async def test_poison_entries_are_dead_lettered_and_their_batch_delivered(
    redis_driver: RedisDriver,
) -> None:
    d, client = redis_driver, redis_driver.client
    good = [msg("q") for _ in range(4)]
    # poison around and between the good ones, all fetched by one dequeue
    await client.rpush(keys(d, "q").ready, *POISON[:8])
    await d.enqueue_many(good[:2])
    await client.rpush(keys(d, "q").ready, *POISON[8:])
    await d.enqueue_many(good[2:])
    got = await d.dequeue(["q"], limit=100, wait=0)
    assert [x.task_id for x in got] == [m.task_id for m in good]
    dead = await d.list_dead_letters(queue="q", limit=100)
    assert sorted(x.payload for x in dead) == sorted(POISON)  # the whole string, kept as is
    assert {x.failure.exception_type for x in dead} == {MALFORMED}
    assert "not an asynctasq-redis queue entry" in dead[0].failure.message
    [stats] = await d.stats(["q"])
    assert (stats.ready, stats.in_flight, stats.dead) == (0, len(good), len(POISON))
    await d.ack(got)
    assert await d.dequeue(["q"], limit=100, wait=0) == []


async def test_a_poison_entry_wakes_a_waiting_consumer_without_failing_it(
    redis_driver: RedisDriver,
) -> None:
    d, client = redis_driver, redis_driver.client
    waiter = asyncio.create_task(d.dequeue(["q"], limit=5, wait=5.0))
    await asyncio.sleep(0.05)
    await client.rpush(keys(d, "q").ready, b"poison-id\n1500.5\n0\n{}", b"\xffid\n1\n0\n{}")
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await d.enqueue(good := msg("q"))
    assert [x.task_id for x in await waiter] == [good.task_id]
    [stats] = await d.stats(["q"])
    assert stats.dead == 2


async def test_ids_in_any_script_and_the_largest_numbers_still_run(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    ids = ["tâche-☃-𝄞-日本", "\x00nul", "x" * 300]
    await d.enqueue_many([msg("q", task_id) for task_id in ids])
    await d.enqueue(msg("q", "long-lease", vt=10**12 - 0.001))  # 15 digits of ms
    got = await d.dequeue(["q"], limit=10, wait=0)
    assert [x.task_id for x in got] == [*ids, "long-lease"]
    assert got[-1].visibility_timeout == pytest.approx(10**12)
    await d.release(got)  # the count goes back through the script's arithmetic
    again = await d.dequeue(["q"], limit=10, wait=0)
    assert [x.attempts for x in again] == [0] * 4
    await d.dead_letter(again[-1], Failure("E", "m", "t"))
    assert await d.retry_dead_letters(queue="q") == 1
    [back] = await d.dequeue(["q"], limit=10, wait=0)
    assert back.visibility_timeout == pytest.approx(10**12)


async def test_an_entry_the_client_cannot_read_is_dead_lettered_by_its_lease(
    redis_driver: RedisDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The script leases only what the client reads; should one still fail there, it alone
    # is dead-lettered (by its receipt) and the rest of its batch is delivered.
    real = Delivery

    def delivery(**fields: Any) -> Any:
        if fields["task_id"] == "unreadable":
            raise ValueError("cannot read this one")
        return real(**fields)

    monkeypatch.setattr(_dequeue, "Delivery", delivery)
    d = redis_driver
    good = [msg("q"), msg("q")]
    await d.enqueue_many([good[0], msg("q", "unreadable"), good[1]])
    got = await d.dequeue(["q"], limit=10, wait=0)
    assert [x.task_id for x in got] == [m.task_id for m in good]
    [dead] = await d.list_dead_letters(queue="q")
    assert (dead.task_id, dead.payload, dead.attempts) == ("unreadable", b"{}", 1)
    assert dead.failure.exception_type == MALFORMED
    assert "cannot read this one" in dead.failure.message
    [stats] = await d.stats(["q"])
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 2, 1)


async def test_forged_lease_records_are_dead_lettered_not_failed_on(
    redis_driver: RedisDriver,
) -> None:
    d, client, k = redis_driver, redis_driver.client, keys(redis_driver, "q")
    # an expired lease whose record has no token line
    await client.hset(k.leases, "forged", b"garbage")
    await client.zadd(k.leased, {"forged": 0})
    await d.enqueue_many([msg("q"), msg("q")])
    first, second = await d.dequeue(["q"], limit=10, wait=0)
    # held leases whose entries were overwritten: giving back and dead-lettering keep them
    for delivery in (first, second):
        await client.hset(k.leases, field(delivery), f"{delivery.receipt}\nno entry")
    await d.release([first])
    await d.dead_letter(second, Failure("E", "m", "t"))
    dead = await d.list_dead_letters(queue="q")
    assert sorted(x.payload for x in dead) == [b"garbage", b"no entry", b"no entry"]
    assert {x.failure.exception_type for x in dead} == {MALFORMED}
    [stats] = await d.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 0)


async def test_a_queue_name_that_is_not_utf8_does_not_fail_the_listings(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    await d.enqueue(msg("ok"))
    await d.client.sadd(registry_key(d.prefix), b"\xffbad", b"\xfebad")
    assert await d.queue_names() == ["ok", "\ufffdbad"]
    assert await d.list_dead_letters() == []
    assert [s.queue for s in await d.stats(await d.queue_names())] == ["ok", "\ufffdbad"]


async def test_forged_dead_letters_are_listed_with_what_can_be_read(
    redis_driver: RedisDriver,
) -> None:
    d, client, k = redis_driver, redis_driver.client, keys(redis_driver, "ok")
    await d.enqueue(real := msg("ok"))
    [delivery] = await d.dequeue(["ok"], limit=1, wait=0)
    await d.dead_letter(delivery, Failure("E", "m", "t"))
    forged: dict[bytes, dict[Any, Any]] = {
        b"attempts": {"p": b"{}", "v": 1, "a": "x", "e": "E", "s": "m", "t": "", "f": 1},
        b"negative": {"p": b"{}", "v": 1, "a": "-3", "e": "E", "f": "-1"},
        b"time": {"p": b"{}", "v": 1, "a": 1, "e": "E", "f": "soon"},
        b"far": {"p": b"{}", "v": 1, "a": 1, "f": "9" * 30},
        b"huge": {"p": b"{}", "a": "9" * 5000, "f": "9" * 5000},
        b"float-overflow": {"p": b"{}", "a": 1, "f": "9" * 400},  # an int, past any float
        b"bare": {"p": b"{}"},
        b"\xff": {"p": b"{}", "e": b"\xff", "s": b"\xfe", "t": b"\xfd"},
    }
    for task_id, fields in forged.items():
        await client.hset(k.dead.encode() + b":" + task_id, mapping=fields)
        await client.zadd(k.dead, {task_id: 1})
    await client.set(f"{k.dead}:wrongtype", "a string, not a hash")
    await client.zadd(k.dead, {"wrongtype": 2})
    listed = await d.list_dead_letters(limit=100)
    by_id = {x.task_id: x for x in listed}
    assert set(by_id) == {real.task_id, *(t.decode(errors="replace") for t in forged)}
    assert by_id[real.task_id].attempts == 1
    assert {by_id[t].attempts for t in ("attempts", "negative", "huge", "bare")} == {0}
    assert by_id["\ufffd"].failure == Failure("\ufffd", "\ufffd", "\ufffd")
    for name in ("time", "far", "huge", "float-overflow", "bare"):
        assert by_id[name].failed_at.timestamp() == 0
    # a forged one without a visibility comes back malformed (and is dead-lettered again),
    # without failing the retry of the others
    assert await d.retry_dead_letters(queue="ok", task_ids=["bare", real.task_id]) == 2
    [again] = await d.dequeue(["ok"], limit=10, wait=0)
    assert again.task_id == real.task_id
    [bare] = [x for x in await d.list_dead_letters(limit=100) if x.payload == b"bare\n\n0\n{}"]
    assert bare.failure.exception_type == MALFORMED


async def test_a_forged_status_kind_does_not_fail_a_filtered_listing(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    await d.write_statuses([StatusWrite("good", "q", "running", b"good", 60)])
    await d.client.sadd(f"{status_tag(d.prefix)}:kinds", "nocolon")
    assert await d.list_statuses(state="running") == [b"good"]
    assert await d.list_statuses(queue="q") == [b"good"]
    assert await d.list_statuses() == [b"good"]


@pytest.mark.parametrize("keep", [b"abc", b"nan", b"inf", b"-inf", b""])
async def test_a_forged_log_retention_does_not_fail_appends(
    redis_driver: RedisDriver, keep: bytes
) -> None:
    d = redis_driver
    await d.client.set(f"{log_tag(d.prefix, 'events')}:keep", keep, px=60_000)
    await d.append_log("events", [b"a"], 60)
    assert (await d.read_log("events", None, wait=0))[0] == [b"a"]


async def test_one_batch_of_mixed_visibilities_and_counts_leases_each_as_written(
    redis_driver: RedisDriver,
) -> None:
    """The dequeue script prints each expiry once per visibility and raises a first delivery's
    count without arithmetic: entries that differ in both, in one batch, each keep their own."""
    d, client = redis_driver, redis_driver.client
    k = keys(d, "q")
    entries = [
        (b"a", b"1000", b"0"),
        (b"b", b"600000", b"9"),
        (b"c", b"1000", b"41"),
        (b"d", b"600000", b"0"),
        (b"e", b"7", b"99999999999"),
    ]
    await client.rpush(k.ready, *[b"\n".join([i, vt, n, b"{}"]) for i, vt, n in entries])
    now_ms = int((await client.time())[0]) * 1000
    got = await d.dequeue(["q"], limit=10, wait=0)
    assert [(x.task_id, x.attempts) for x in got] == [
        ("a", 0),
        ("b", 9),
        ("c", 41),
        ("d", 0),
        ("e", 99999999999),
    ]
    for delivery, (_, vt, _) in zip(got, entries, strict=True):
        expiry = await client.zscore(k.leased, field(delivery))
        assert expiry is not None
        assert 0 <= expiry - now_ms - int(vt) < 2_000
    # the lease records hold the raised counts: an expired lease comes back with them
    await client.zadd(k.leased, {field(x): 0 for x in got})
    again = await d.dequeue(["q"], limit=10, wait=0)
    assert sorted((x.task_id, x.attempts) for x in again) == [
        ("a", 1),
        ("b", 10),
        ("c", 42),
        ("d", 1),
        ("e", 100000000000),
    ]
    assert await d.list_dead_letters(queue="q", limit=10) == []


async def test_an_expired_lease_kept_by_task_id_as_earlier_releases_did_is_put_back(
    redis_driver: RedisDriver,
) -> None:
    """Leases are kept under ``\\n<token>\\n<task id>`` now; one an earlier release left under
    its task id (its worker gone) still returns after its expiry, with its raised count."""
    d, client = redis_driver, redis_driver.client
    k = keys(d, "q")
    await client.hset(k.leases, "old-task", b"17\nold-task\n30000\n1\n{}")
    await client.zadd(k.leased, {"old-task": 0})
    [back] = await d.dequeue(["q"], limit=10, wait=0)
    assert (back.task_id, back.attempts) == ("old-task", 1)
    await d.ack([back])
    [stats] = await d.stats(["q"])
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)
    assert await client.hlen(k.leases) == 0


async def test_a_token_handed_out_twice_still_settles_only_its_own_lease(
    redis_driver: RedisDriver,
) -> None:
    """The token counter can go back (Redis restarted without its last writes, a restore, a
    failover to a lagging replica, the key evicted or deleted): two messages leased under one
    token keep two leases, and settling one leaves the other alone."""
    d, client = redis_driver, redis_driver.client
    k = keys(d, "q")
    await d.enqueue(a := msg("q"))
    [first] = await d.dequeue(["q"], limit=1, wait=0)
    await client.delete(k.tag + b":seq")
    await d.enqueue(b := msg("q"))
    [second] = await d.dequeue(["q"], limit=1, wait=0)
    assert (first.task_id, second.task_id) == (a.task_id, b.task_id)
    assert first.receipt == second.receipt  # the same token, twice
    await d.ack([first])
    [stats] = await d.stats(["q"])
    assert stats.in_flight == 1
    await d.extend([first], 600)  # settled: extends nothing, in particular not the other
    await client.zadd(k.leased, {field(second): 0})  # the other expires: it comes back
    [again] = await d.dequeue(["q"], limit=1, wait=0)
    assert (again.task_id, again.attempts) == (b.task_id, 1)
    await d.ack([again])


async def test_an_extend_past_any_clock_keeps_the_lease(redis_driver: RedisDriver) -> None:
    """A timeout beyond 2^63 ms must not wrap the expiry to a negative (already past) score."""
    d, client = redis_driver, redis_driver.client
    await d.enqueue(msg("q"))
    [held] = await d.dequeue(["q"], limit=1, wait=0)
    await d.extend([held], 1e16)
    expiry = await client.zscore(keys(d, "q").leased, field(held))
    assert expiry is not None and expiry > 1e18
    assert await d.dequeue(["q"], limit=1, wait=0) == []
    await d.ack([held])


_ran: list[str] = []


@task(queue="forged-vt", max_attempts=3)
async def record(name: str) -> None:
    _ran.append(name)


async def test_an_entry_with_a_visibility_no_dispatch_sets_is_dead_lettered_not_run(
    redis_driver: RedisDriver,
) -> None:
    """Visibility 0 would hand the entry out again while a worker dead-letters it, and one
    past ten years is not a lease: both get a short lease, and the worker dead-letters them
    without running them."""
    d, client = redis_driver, redis_driver.client
    k = keys(d, "forged-vt")
    forged = {"vt-zero": b"0", "vt-past-ten-years": b"999999999999999"}
    for name, vt in forged.items():
        payload = prepare(record(name)).payload
        await client.rpush(k.ready, b"\n".join([str(uuid.uuid4()).encode(), vt, b"0", payload]))
    now_ms = int((await client.time())[0]) * 1000
    got = await d.dequeue(["forged-vt"], limit=10, wait=0)
    assert len(got) == 2
    for delivery in got:
        expiry = await client.zscore(k.leased, field(delivery))
        assert expiry is not None
        assert 0 <= expiry - now_ms - MALFORMED_LEASE * 1000 < 2_000
    assert await d.dequeue(["forged-vt"], limit=10, wait=0) == []  # not handed out again
    await client.zadd(k.leased, {field(x): 0 for x in got})  # expire them: back to ready

    _ran.clear()
    await d.enqueue(prepare(record("good")))
    worker = Worker(driver=d, queues=["forged-vt"], burst=True, install_signal_handlers=False)
    await asyncio.wait_for(worker.run(), 30)
    assert _ran == ["good"]
    dead = await d.list_dead_letters(queue="forged-vt", limit=10)
    assert [x.failure.exception_type for x in dead] == [MALFORMED, MALFORMED]
    assert all("visibility timeout" in x.failure.message for x in dead)
