"""Conformance tests of message priorities, part of `DriverConformance`.

A driver that orders by priority keeps `priorities = True` (the default) and passes the
ordering tests; one that cannot (SQS) sets it False and must then refuse a message whose
priority is not 0 instead of queueing it out of order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import ClassVar

import pytest

from asynctasq.drivers.base import MAX_PRIORITY, Delivery, Driver, Failure, OutgoingMessage


def _msg(
    queue: str, priority: int, *, delay: float = 0.0, visibility_timeout: float = 30.0
) -> OutgoingMessage:
    task_id = str(uuid.uuid4())
    return OutgoingMessage(
        task_id=task_id,
        queue=queue,
        payload=f'{{"id":"{task_id}","p":{priority}}}'.encode(),
        delay=delay,
        visibility_timeout=visibility_timeout,
        priority=priority,
    )


class PriorityConformance:
    """The priority rule of the driver contract (mixed into `DriverConformance`)."""

    priorities: ClassVar[bool] = True
    """Ready messages of a queue are handed out highest priority first; False where the
    broker cannot order by priority (the driver then refuses priorities other than 0)."""
    lease_expiry: ClassVar[bool] = True
    min_visibility_timeout: ClassVar[float] = 1.0
    delay_slack: ClassVar[float] = 0.5

    async def expire_leases(self, driver: Driver, deliveries: Sequence[Delivery]) -> Driver:
        raise NotImplementedError  # DriverConformance's

    async def _one_by_one(self, driver: Driver, queue: str, want: int) -> list[str]:
        """Dequeue `want` messages one at a time (limit 1 each); their task ids in order."""
        ids: list[str] = []
        deadline = time.monotonic() + 10.0
        while len(ids) < want and time.monotonic() < deadline:
            for delivery in await driver.dequeue([queue], limit=1, wait=1.0):
                ids.append(delivery.task_id)
                await driver.ack([delivery])
        return ids

    def _need_priorities(self) -> None:
        if not self.priorities:
            pytest.skip("this broker does not order by priority")

    async def test_higher_priority_first_then_oldest_first(
        self, driver: Driver, queue: str
    ) -> None:
        self._need_priorities()
        sent = [_msg(queue, p) for p in (0, 5, MAX_PRIORITY, 5, 0, 1)]
        for message in sent:
            await driver.enqueue(message)
        want = [sent[2], sent[1], sent[3], sent[5], sent[0], sent[4]]
        assert await self._one_by_one(driver, queue, 6) == [m.task_id for m in want]

    async def test_a_batch_is_ordered_by_priority(self, driver: Driver, queue: str) -> None:
        self._need_priorities()
        sent = [_msg(queue, p) for p in (0, 3, 0, 7, 3)]
        await driver.enqueue_many(sent)
        want = [sent[3], sent[1], sent[4], sent[0], sent[2]]
        assert await self._one_by_one(driver, queue, 5) == [m.task_id for m in want]

    async def test_a_batch_dequeue_takes_the_highest_first(
        self, driver: Driver, queue: str
    ) -> None:
        self._need_priorities()
        low = [_msg(queue, 0) for _ in range(3)]
        high = [_msg(queue, 8) for _ in range(2)]
        await driver.enqueue_many([*low, *high])
        await asyncio.sleep(0.2)  # all stored before the dequeue looks
        got = await driver.dequeue([queue], limit=2, wait=1.0)
        assert {d.task_id for d in got} <= {m.task_id for m in high}
        assert got, "nothing was handed out"

    async def test_a_due_delayed_message_competes_by_its_priority(
        self, driver: Driver, queue: str
    ) -> None:
        self._need_priorities()
        later = _msg(queue, 6, delay=1.0)
        await driver.enqueue(later)
        now = [_msg(queue, 0) for _ in range(2)]
        await driver.enqueue_many(now)
        await asyncio.sleep(1.0 + self.delay_slack + 0.5)  # `later` is due by now
        ids = await self._one_by_one(driver, queue, 3)
        assert ids == [later.task_id, now[0].task_id, now[1].task_id]

    async def test_priority_orders_within_a_queue_not_across_queues(
        self, driver: Driver, queue: str
    ) -> None:
        self._need_priorities()
        first, second = queue + "-a", queue + "-b"
        await driver.enqueue(_msg(second, MAX_PRIORITY))
        await driver.enqueue(_msg(first, 0))
        await asyncio.sleep(0.2)  # both stored before one dequeue looks at both
        got = await driver.dequeue([first, second], limit=1, wait=1.0)
        assert [d.queue for d in got] == [first]

    async def test_a_retry_keeps_the_priority(self, driver: Driver, queue: str) -> None:
        self._need_priorities()
        urgent = _msg(queue, 7)
        await driver.enqueue(urgent)
        [first] = await driver.dequeue([queue], limit=1, wait=2.0)
        others = [_msg(queue, 0), _msg(queue, 4)]
        await driver.enqueue_many(others)
        await driver.retry(first, delay=0)
        ids = await self._one_by_one(driver, queue, 3)
        assert ids == [urgent.task_id, others[1].task_id, others[0].task_id]

    async def test_a_delayed_retry_keeps_the_priority(self, driver: Driver, queue: str) -> None:
        self._need_priorities()
        urgent = _msg(queue, 7)
        await driver.enqueue(urgent)
        [first] = await driver.dequeue([queue], limit=1, wait=2.0)
        await driver.retry(first, delay=0.5)
        low = _msg(queue, 0)
        await driver.enqueue(low)
        await asyncio.sleep(0.5 + self.delay_slack + 0.5)
        assert await self._one_by_one(driver, queue, 2) == [urgent.task_id, low.task_id]

    async def test_a_release_keeps_the_priority(self, driver: Driver, queue: str) -> None:
        self._need_priorities()
        urgent = _msg(queue, 3)
        await driver.enqueue(urgent)
        first = await driver.dequeue([queue], limit=1, wait=2.0)
        low = _msg(queue, 0)
        await driver.enqueue(low)
        await driver.release(first)
        assert await self._one_by_one(driver, queue, 2) == [urgent.task_id, low.task_id]

    async def test_an_expired_lease_keeps_the_priority(self, driver: Driver, queue: str) -> None:
        self._need_priorities()
        urgent = _msg(queue, 5, visibility_timeout=self.min_visibility_timeout)
        await driver.enqueue(urgent)
        first = await driver.dequeue([queue], limit=1, wait=2.0)
        assert [d.task_id for d in first] == [urgent.task_id]
        low = _msg(queue, 0)
        await driver.enqueue(low)
        driver = await self.expire_leases(driver, first)
        if self.lease_expiry:
            await asyncio.sleep(self.delay_slack)
        assert await self._one_by_one(driver, queue, 2) == [urgent.task_id, low.task_id]

    async def test_a_retried_dead_letter_keeps_the_priority(
        self, driver: Driver, queue: str
    ) -> None:
        self._need_priorities()
        urgent = _msg(queue, 9)
        await driver.enqueue(urgent)
        [delivery] = await driver.dequeue([queue], limit=1, wait=2.0)
        await driver.dead_letter(delivery, Failure("builtins.RuntimeError", "x", "tb"))
        low = _msg(queue, 0)
        await driver.enqueue(low)
        assert await driver.retry_dead_letters(task_ids=[urgent.task_id]) == 1
        assert await self._one_by_one(driver, queue, 2) == [urgent.task_id, low.task_id]

    async def test_a_priority_it_cannot_honour_is_refused(self, driver: Driver, queue: str) -> None:
        if self.priorities:
            pytest.skip("this broker orders by priority")
        with pytest.raises(ValueError, match="priorit"):
            await driver.enqueue(_msg(queue, 3))
        with pytest.raises(ValueError, match="priorit"):
            await driver.enqueue_many([_msg(queue, 0), _msg(queue, 1)])
        # Nothing of the refused batch was queued; priority 0 still goes through.
        assert await driver.dequeue([queue], limit=5, wait=0.5) == []
        await driver.enqueue(_msg(queue, 0))
        assert len(await driver.dequeue([queue], limit=5, wait=2.0)) == 1
