"""Redis Cluster specifics, on the local 3-node cluster the session fixture starts."""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from asynctasq.drivers.base import Failure, OutgoingMessage
from asynctasq_redis import RedisDriver


def msg(queue: str) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, b"{}", visibility_timeout=30)


def slot(driver: RedisDriver, queue: str) -> int:
    return int(key_slot(f"{driver.prefix}:{queue}".encode()))


def queues_on_different_slots(driver: RedisDriver, n: int) -> list[str]:
    names: list[str] = []
    i = 0
    while len(names) < n:
        name = f"q{i}"
        if all(slot(driver, name) != slot(driver, other) for other in names):
            names.append(name)
        i += 1
    return names


async def test_driver_uses_a_cluster_client(cluster_driver: RedisDriver) -> None:
    assert isinstance(cluster_driver.client, RedisCluster)
    assert len(cluster_driver.client.get_primaries()) == 3


async def test_every_key_of_a_queue_lives_in_one_slot(cluster_driver: RedisDriver) -> None:
    await cluster_driver.enqueue_many([msg("emails") for _ in range(3)])
    got = await cluster_driver.dequeue(["emails"], limit=2, wait=0)
    await cluster_driver.dead_letter(got[0], Failure("E", "m", "t"))
    keys: list[bytes] = []
    for node in cluster_driver.client.get_primaries():
        keys += await cluster_driver.client.keys(f"{{{cluster_driver.prefix}:*", target_nodes=node)
    assert len(keys) >= 5  # ready, leased, dead, message hashes
    assert {key_slot(k) for k in keys} == {slot(cluster_driver, "emails")}


async def test_multi_queue_dequeue_across_slots_keeps_the_order(
    cluster_driver: RedisDriver,
) -> None:
    a, b, c = queues_on_different_slots(cluster_driver, 3)
    await cluster_driver.enqueue_many([msg(c), msg(b), msg(a), msg(b)])
    got = await cluster_driver.dequeue([a, b, c], limit=3, wait=0)
    assert [d.queue for d in got] == [a, b, b]
    got = await cluster_driver.dequeue([a, b, c], limit=3, wait=0)
    assert [d.queue for d in got] == [c]


async def test_multi_queue_wait_wakes_on_any_slot(cluster_driver: RedisDriver) -> None:
    queues = queues_on_different_slots(cluster_driver, 3)
    for target in queues:
        waiter = asyncio.create_task(cluster_driver.dequeue(queues, limit=1, wait=5.0))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await cluster_driver.enqueue(msg(target))
        [delivery] = await waiter
        assert delivery.queue == target
        assert time.monotonic() - started < 2.0  # woken: the wait was for 5 s
        await cluster_driver.ack([delivery])


async def test_multi_queue_wait_times_out_cleanly(cluster_driver: RedisDriver) -> None:
    queues = queues_on_different_slots(cluster_driver, 2)
    started = time.monotonic()
    assert await cluster_driver.dequeue(queues, limit=1, wait=0.5) == []
    assert 0.45 <= time.monotonic() - started < 1.5
    await cluster_driver.enqueue(msg(queues[1]))
    assert len(await cluster_driver.dequeue(queues, limit=1, wait=1.0)) == 1


async def test_dead_letters_across_slots(cluster_driver: RedisDriver) -> None:
    queues = queues_on_different_slots(cluster_driver, 3)
    await cluster_driver.enqueue_many([msg(q) for q in queues])
    got = await cluster_driver.dequeue(queues, limit=3, wait=0)
    for d in got:
        await cluster_driver.dead_letter(d, Failure("E", d.queue, "t"))
    listed = await cluster_driver.list_dead_letters()
    assert sorted(d.queue for d in listed) == sorted(queues)
    assert await cluster_driver.retry_dead_letters() == 3
    again = await cluster_driver.dequeue(queues, limit=3, wait=0)
    assert sorted(d.task_id for d in again) == sorted(d.task_id for d in got)
    stats = await cluster_driver.stats(queues)
    assert [s.in_flight for s in stats] == [1, 1, 1]
