"""Acks that ride with the next dequeue: one script call settles a batch and takes the next."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asynctasq import Middleware, dispatch_many, task
from asynctasq.drivers.base import AckingDequeue, Delivery, OutgoingMessage
from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver

HERE = str(Path(__file__).resolve().parent)


def msg(queue: str) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), queue, b"{}", visibility_timeout=30)


async def test_one_call_acks_a_batch_and_takes_the_next(redis_driver: RedisDriver) -> None:
    assert isinstance(redis_driver, AckingDequeue)
    await redis_driver.enqueue_many([msg("a") for _ in range(5)] + [msg("b") for _ in range(2)])
    first = await redis_driver.dequeue(["a", "b"], limit=4, wait=0)
    stale = dataclasses.replace(first[0], receipt=b"999999999")
    second = await redis_driver.ack_and_dequeue(
        [*first[1:], first[1], stale], ["b", "a"], limit=2, wait=0
    )
    assert [d.queue for d in second] == ["b", "b"]  # served in the order given
    a, b = await redis_driver.stats(["a", "b"])
    assert (a.ready, a.in_flight) == (1, 1)  # only first[0] is still leased: stale acked nothing
    assert (b.ready, b.in_flight) == (0, 2)
    # nothing left to take: the acks are applied all the same
    rest = await redis_driver.dequeue(["a"], limit=5, wait=0)
    assert (
        await redis_driver.ack_and_dequeue([*rest, first[0], *second], ["a", "b"], limit=5, wait=0)
        == []
    )
    a, b = await redis_driver.stats(["a", "b"])
    assert (a.ready, a.in_flight, b.ready, b.in_flight) == (0, 0, 0, 0)


async def test_acks_of_ranked_messages_ride_too(redis_driver: RedisDriver) -> None:
    """A message with a priority carries a ``<n>/<p>`` token, not a number."""
    ranked = [dataclasses.replace(msg("a"), priority=p) for p in (5, 9, 0)]
    await redis_driver.enqueue_many(ranked)
    first = await redis_driver.dequeue(["a"], limit=5, wait=0)  # room for a wake-up entry
    assert len(first) == 3
    assert any(isinstance(d.receipt, bytes) and b"/" in d.receipt for d in first)
    assert await redis_driver.ack_and_dequeue(first, ["a"], limit=3, wait=0) == []
    [a] = await redis_driver.stats(["a"])
    assert (a.ready, a.in_flight) == (0, 0)


async def test_acks_of_a_queue_not_served_are_applied_apart(redis_driver: RedisDriver) -> None:
    await redis_driver.enqueue_many([msg("a"), msg("b")])
    [of_a] = await redis_driver.dequeue(["a"], limit=1, wait=0)
    [of_b] = await redis_driver.ack_and_dequeue([of_a], ["b"], limit=1, wait=0)
    [a] = await redis_driver.stats(["a"])
    assert (a.ready, a.in_flight) == (0, 0)
    await redis_driver.ack([of_b])


class CountingDriver(RedisDriver):
    """Counts how the worker acknowledges."""

    alone = 0
    ridden = 0

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.alone += len(deliveries)
        await super().ack(deliveries)

    async def ack_and_dequeue(
        self, acks: Sequence[Delivery], queues: Sequence[str], *, limit: int, wait: float
    ) -> list[Delivery]:
        self.ridden += len(acks)
        return await super().ack_and_dequeue(acks, queues, limit=limit, wait=wait)


URL = os.environ.get("ASYNCTASQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PREFIX = f"test-ride-{uuid.uuid4().hex[:8]}"
counting = CountingDriver(url=URL, prefix=PREFIX)
ran: list[int] = []


@task(queue="ride", driver=counting)
async def note(n: int) -> None:
    ran.append(n)


async def test_a_draining_worker_acks_with_its_fetches(redis_url: str) -> None:
    assert redis_url == URL
    try:
        await dispatch_many(note(n) for n in range(300))
        worker = Worker(
            counting,
            queues=["ride"],
            concurrency=10,
            burst=True,
            install_signal_handlers=False,
            allowed_roots=[HERE],
        )
        await asyncio.wait_for(worker.run(), 60)
        assert sorted(ran) == list(range(300))
        [stats] = await counting.stats(["ride"])
        assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)
        assert counting.alone + counting.ridden >= 300
        # most acks rode with a fetch: a drain costs one round-trip per batch, not two
        assert counting.ridden >= 200, (counting.ridden, counting.alone)
    finally:
        keys = [k async for k in counting.client.scan_iter(match=f"{PREFIX}*")]
        if keys:
            await counting.client.delete(*keys)
        await counting.close()


release_long = asyncio.Event()


@task(queue="ride-stop", driver=counting)
async def short_one() -> None:
    pass


@task(queue="ride-stop", driver=counting)
async def long_one() -> None:
    await release_long.wait()


class StopAfterShort(Middleware):
    """Asks the worker to stop right after the short task ends (its ack then waits to ride
    with a fetch that never comes)."""

    def __init__(self) -> None:
        self.worker: Worker | None = None

    def after_process(self, job: Any, result: Any, exc: BaseException | None) -> None:
        if job.task_name.endswith("short_one") and self.worker is not None:
            self.worker.request_stop()


async def test_an_ack_waiting_to_ride_goes_out_when_the_worker_stops(redis_url: str) -> None:
    assert redis_url == URL
    stopper = StopAfterShort()
    worker = Worker(
        counting,
        queues=["ride-stop"],
        concurrency=2,
        install_signal_handlers=False,
        allowed_roots=[HERE],
        middleware=[stopper],
        shutdown_timeout=30,
    )
    stopper.worker = worker
    try:
        await dispatch_many([long_one(), short_one()])
        runner = asyncio.create_task(worker.run())
        # The short task's ack is out while the long one still runs (the drain has 30 s):
        # it does not wait for the drain's end, where a SIGKILL would lose it.
        for _ in range(500):
            [stats] = await counting.stats(["ride-stop"])
            if worker.stopping and stats.in_flight == 1:
                break
            await asyncio.sleep(0.01)
        assert worker.stopping and stats.in_flight == 1 and worker.running == 1
        release_long.set()
        await asyncio.wait_for(runner, 30)
        [stats] = await counting.stats(["ride-stop"])
        assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)
    finally:
        release_long.set()
        keys = [k async for k in counting.client.scan_iter(match=f"{PREFIX}*")]
        if keys:
            await counting.client.delete(*keys)
        await counting.close()
