"""Priorities on Redis beyond the conformance suite: the default path stays the plain list,
waiting consumers wake for ranked messages, and forged priority data is passed over or
dead-lettered, never failing a dequeue."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from asynctasq.drivers.base import Failure, OutgoingMessage
from asynctasq_redis import RedisDriver
from asynctasq_redis._keys import QueueKeys


def msg(queue: str, priority: int = 0, delay: float = 0.0) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, b"{}", delay=delay, priority=priority)


def keys(driver: RedisDriver, queue: str) -> QueueKeys:
    return QueueKeys.build(driver.prefix, queue)


async def test_the_default_priority_never_touches_the_ranked_keys(
    redis_driver: RedisDriver,
) -> None:
    d, client = redis_driver, redis_driver.client
    await d.enqueue(msg("q"))
    await d.enqueue_many([msg("q"), msg("q", delay=0.01)])
    await asyncio.sleep(0.05)
    got = await d.dequeue(["q"], limit=10, wait=1.0)
    assert len(got) == 3
    await d.retry(got[0], delay=0)
    await d.release(got[1:2])
    await d.dead_letter(got[2], Failure("builtins.RuntimeError", "x", ""))
    await d.retry_dead_letters(queue="q")
    base = keys(d, "q").tag.decode()
    assert await client.exists(f"{base}:levels") == 0
    assert await client.keys(f"{base}:ready:*") == []
    # the receipts of default-priority leases are the plain counter
    assert all(isinstance(x.receipt, int) for x in got)


async def test_a_waiting_consumer_wakes_for_a_ranked_message(redis_driver: RedisDriver) -> None:
    d = redis_driver
    for queues in (["q"], ["q", "other"]):  # the one-queue wait and the standing waits
        waiter = asyncio.create_task(d.dequeue(queues, limit=1, wait=30.0))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        sent = msg("q", 4)
        await d.enqueue(sent)
        # woken by the enqueue, long before the 30 s wait would end
        got = await asyncio.wait_for(waiter, 2.5)
        assert [x.task_id for x in got] == [sent.task_id]
        await d.ack(got)


async def test_a_ranked_retry_and_release_wake_a_waiting_consumer(
    redis_driver: RedisDriver,
) -> None:
    d = redis_driver
    await d.enqueue(msg("q", 9))
    [first] = await d.dequeue(["q"], limit=1, wait=1.0)
    for how in ("retry", "release"):
        waiter = asyncio.create_task(d.dequeue(["q"], limit=1, wait=30.0))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        if how == "retry":
            await d.retry(first, delay=0)
        else:
            await d.release([first])
        [first] = await asyncio.wait_for(waiter, 2.5)


@pytest.mark.parametrize("priority", [-1, 10, 1.5, "3"])
async def test_a_priority_outside_the_range_is_refused(
    redis_driver: RedisDriver, priority: object
) -> None:
    bad = OutgoingMessage(str(uuid.uuid4()), "q", b"{}", priority=priority)  # type: ignore[arg-type]  # what a careless caller might pass
    with pytest.raises(ValueError, match="priority must be"):
        await redis_driver.enqueue(bad)
    with pytest.raises(ValueError, match="priority must be"):
        await redis_driver.enqueue_many([msg("q"), bad])
    assert await redis_driver.dequeue(["q"], limit=5, wait=0) == []


async def test_forged_levels_and_delayed_members_are_passed_over(
    redis_driver: RedisDriver,
) -> None:
    d, client = redis_driver, redis_driver.client
    base = keys(d, "q").tag.decode()
    await client.zadd(f"{base}:levels", {"x": 5, "0": 1, "12": 3, "5": 5})
    await client.rpush(f"{base}:ready:5", b"not an entry")
    forged = [b"\n7\nnot an entry", b"\nx\n" + b"id\n1000\n0\n{}", b"\n"]
    await client.zadd(f"{base}:delayed", dict.fromkeys(forged, 0))
    good = msg("q", 2)
    await d.enqueue(good)
    got = await d.dequeue(["q"], limit=10, wait=0)
    assert [x.task_id for x in got] == [good.task_id]
    dead = await d.list_dead_letters(queue="q")
    assert len(dead) == 4  # each forged entry kept as a dead letter, never run
    assert await client.zrange(f"{base}:levels", 0, -1) == []
    [stats] = await d.stats(["q"])
    assert (stats.ready, stats.in_flight) == (0, 1)


async def test_a_forged_dead_letter_priority_counts_as_none(redis_driver: RedisDriver) -> None:
    d, client = redis_driver, redis_driver.client
    await d.enqueue(sent := msg("q", 3))
    [delivery] = await d.dequeue(["q"], limit=1, wait=1.0)
    await d.dead_letter(delivery, Failure("builtins.RuntimeError", "x", ""))
    base = keys(d, "q").tag.decode()
    assert await client.hget(f"{base}:dead:{sent.task_id}", "r") == b"3"
    await client.hset(f"{base}:dead:{sent.task_id}", "r", "99")
    assert await d.retry_dead_letters(queue="q") == 1
    [again] = await d.dequeue(["q"], limit=1, wait=1.0)
    assert (again.task_id, again.receipt.__class__) == (sent.task_id, int)  # priority 0 now


async def test_stats_and_purge_count_the_ranked_lists(redis_driver: RedisDriver) -> None:
    d = redis_driver
    await d.enqueue_many([msg("q"), msg("q", 1), msg("q", 9), msg("q", 9, delay=60)])
    [stats] = await d.stats(["q"])
    assert (stats.ready, stats.delayed) == (3, 1)
    assert await d.purge("q") == 4
    assert await d.dequeue(["q"], limit=5, wait=0) == []
