"""`DriverConformance`: one set of tests that proves any driver keeps the contract.

Subclass it in a driver package's tests and provide a `driver` fixture::

    class TestRedisConformance(DriverConformance):
        @pytest.fixture
        async def driver(self) -> AsyncIterator[Driver]:
            driver = RedisDriver(url=..., prefix=f"test-{uuid4().hex}")
            await driver.connect()
            yield driver
            await driver.close()

Capability flags (class attributes) describe where a broker legitimately differs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import ClassVar

import pytest

from asynctasq.drivers.base import (
    AckingDequeue,
    Delivery,
    Driver,
    Failure,
    OutgoingMessage,
    ResultStore,
)
from asynctasq.drivers.memory import MemoryDriver
from asynctasq.testing.claims_conformance import ClaimsConformance
from asynctasq.testing.lifecycle_conformance import LifecycleConformance
from asynctasq.testing.priority_conformance import PriorityConformance
from asynctasq.testing.schema_conformance import SchemaConformance


def _msg(
    queue: str,
    body: bytes | None = None,
    *,
    delay: float = 0.0,
    visibility_timeout: float = 30.0,
) -> OutgoingMessage:
    task_id = str(uuid.uuid4())
    return OutgoingMessage(
        task_id=task_id,
        queue=queue,
        payload=body if body is not None else f'{{"id":"{task_id}"}}'.encode(),
        delay=delay,
        visibility_timeout=visibility_timeout,
    )


class DriverConformance(
    LifecycleConformance, ClaimsConformance, PriorityConformance, SchemaConformance
):
    """The contract every driver passes. Override `driver`; adjust the flags if needed.

    The lifecycle capabilities' tests (`LifecycleConformance`) and the claims' tests
    (`ClaimsConformance`) are included; each skips for a driver without that capability.
    So are the priority tests (`PriorityConformance`, flag ``priorities``).
    The schema tests (`SchemaConformance`) skip for a driver that keeps no schema.
    """

    fifo: ClassVar[bool] = True
    """Messages of one queue, enqueued one after another, are delivered in that order."""
    lease_expiry: ClassVar[bool] = True
    """Leases end by time; False where only a dropped connection ends them (RabbitMQ)."""
    min_visibility_timeout: ClassVar[float] = 1.0
    """The shortest visibility timeout the broker accepts, used by the expiry tests."""
    delay_slack: ClassVar[float] = 0.5
    """Seconds a delayed or expired message may arrive late."""
    exact_stats: ClassVar[bool] = True
    """`stats` counts exactly (brokers that approximate set this False)."""
    stale_receipts_ignored: ClassVar[bool] = True
    """Settling with the receipt of an expired lease leaves the new lease alone."""

    @pytest.fixture
    async def driver(self) -> AsyncIterator[Driver]:
        """A connected driver isolated for one test. Subclasses must override this."""
        raise NotImplementedError("subclass DriverConformance and provide a `driver` fixture")
        # The yield keeps this an async generator, like the overrides.
        yield MemoryDriver()  # type: ignore[unreachable]  # noqa: PT022

    @pytest.fixture
    def queue(self) -> str:
        """A queue name no other test uses."""
        return f"conf-{uuid.uuid4().hex[:10]}"

    async def expire_leases(self, driver: Driver, deliveries: Sequence[Delivery]) -> Driver:
        """End the leases of `deliveries` as a crashed worker would; return a driver to use.

        Default: wait out the visibility timeout. Connection-bound brokers override this to
        drop the connection and return a fresh, connected driver.
        """
        longest = max(d.visibility_timeout for d in deliveries)
        await asyncio.sleep(longest + 0.1)
        return driver

    async def _take(
        self, driver: Driver, queues: Sequence[str], want: int, *, within: float = 5.0
    ) -> list[Delivery]:
        """Dequeue until `want` messages arrived or `within` seconds passed."""
        got: list[Delivery] = []
        deadline = time.monotonic() + within
        while len(got) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got += await driver.dequeue(queues, limit=want - len(got), wait=min(left, 1.0))
        return got

    # -- enqueue / dequeue -------------------------------------------------------------
    async def test_enqueue_then_dequeue_returns_the_message(
        self, driver: Driver, queue: str
    ) -> None:
        message = _msg(queue, b'{"hello":"world"}')
        await driver.enqueue(message)
        [delivery] = await self._take(driver, [queue], 1)
        assert delivery.task_id == message.task_id
        assert delivery.queue == queue
        assert delivery.payload == b'{"hello":"world"}'
        assert delivery.attempts == 0
        assert delivery.visibility_timeout > 0

    async def test_binary_and_large_payloads_round_trip(self, driver: Driver, queue: str) -> None:
        binary = bytes(range(256)) * 4
        large = b"x" * (100 * 1024)
        await driver.enqueue(_msg(queue, binary))
        await driver.enqueue(_msg(queue, large))
        got = await self._take(driver, [queue], 2)
        assert sorted(d.payload for d in got) == sorted([binary, large])

    async def test_empty_queue_returns_nothing_without_waiting(
        self, driver: Driver, queue: str
    ) -> None:
        started = time.monotonic()
        assert await driver.dequeue([queue], limit=5, wait=0) == []
        # One round trip, not a wait: 2.5 s is far above that even on a busy machine.
        assert time.monotonic() - started < 2.5

    async def test_fifo_within_a_queue(self, driver: Driver, queue: str) -> None:
        if not self.fifo:
            pytest.skip("this broker does not order messages")
        sent = [_msg(queue) for _ in range(8)]
        for message in sent:
            await driver.enqueue(message)
        got = await self._take(driver, [queue], 8)
        assert [d.task_id for d in got] == [m.task_id for m in sent]

    async def test_limit_is_respected(self, driver: Driver, queue: str) -> None:
        sent = [_msg(queue) for _ in range(6)]
        await driver.enqueue_many(sent)
        # Every call hands out at most `limit` (brokers may give fewer), and all arrive.
        batches: list[list[Delivery]] = []
        deadline = time.monotonic() + 5.0
        while sum(map(len, batches)) < len(sent) and time.monotonic() < deadline:
            batches.append(await driver.dequeue([queue], limit=4, wait=1.0))
        assert max(map(len, batches)) <= 4, [len(b) for b in batches]
        got = [d.task_id for batch in batches for d in batch]
        assert sorted(got) == sorted(m.task_id for m in sent)
        assert await driver.dequeue([queue], limit=4, wait=0) == []

    async def test_queues_are_isolated(self, driver: Driver, queue: str) -> None:
        other = queue + "-other"
        await driver.enqueue(_msg(other))
        assert await driver.dequeue([queue], limit=1, wait=0.3) == []
        [delivery] = await self._take(driver, [other], 1)
        assert delivery.queue == other

    async def test_queues_are_served_in_the_order_given(self, driver: Driver, queue: str) -> None:
        first, second = queue + "-a", queue + "-b"
        await driver.enqueue(_msg(second))
        await driver.enqueue(_msg(first))
        await asyncio.sleep(0.2)  # both stored before one dequeue looks at both
        got = await driver.dequeue([first, second], limit=1, wait=1.0)
        assert [d.queue for d in got] == [first]
        got = await driver.dequeue([second, first], limit=1, wait=1.0)
        assert [d.queue for d in got] == [second]

    async def test_waiting_dequeue_wakes_when_a_message_arrives(
        self, driver: Driver, queue: str
    ) -> None:
        waiter = asyncio.create_task(driver.dequeue([queue], limit=1, wait=30.0))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        message = _msg(queue)
        await driver.enqueue(message)
        # Woken by the message, not by a slow poll: back long before its 30 s wait would end
        # (2.5 s is far above a wake-up's latency, even on a busy machine).
        got = await asyncio.wait_for(waiter, 2.5)
        assert [d.task_id for d in got] == [message.task_id]

    # -- delays ------------------------------------------------------------------------
    async def test_delayed_message_waits_its_turn(self, driver: Driver, queue: str) -> None:
        message = _msg(queue, delay=1.5)
        sent_at = time.monotonic()
        await driver.enqueue(message)
        assert await driver.dequeue([queue], limit=1, wait=0.5) == []
        got = await self._take(driver, [queue], 1, within=1.5 + self.delay_slack + 3.0)
        assert [d.task_id for d in got] == [message.task_id]
        assert time.monotonic() - sent_at >= 1.4

    async def test_ready_message_is_not_held_back_by_a_delayed_one(
        self, driver: Driver, queue: str
    ) -> None:
        await driver.enqueue(_msg(queue, delay=60))
        now = _msg(queue)
        await driver.enqueue(now)
        got = await self._take(driver, [queue], 1)
        assert [d.task_id for d in got] == [now.task_id]

    # -- leases ------------------------------------------------------------------------
    async def test_leased_message_is_invisible_to_others(self, driver: Driver, queue: str) -> None:
        await driver.enqueue(_msg(queue))
        assert len(await self._take(driver, [queue], 1)) == 1
        assert await driver.dequeue([queue], limit=1, wait=0.5) == []

    async def test_expired_lease_is_delivered_again_and_counted(
        self, driver: Driver, queue: str
    ) -> None:
        message = _msg(queue, visibility_timeout=self.min_visibility_timeout)
        await driver.enqueue(message)
        first = await self._take(driver, [queue], 1)
        assert [d.attempts for d in first] == [0]
        driver = await self.expire_leases(driver, first)
        second = await self._take(
            driver, [queue], 1, within=self.min_visibility_timeout + self.delay_slack + 3.0
        )
        assert [d.task_id for d in second] == [message.task_id]
        assert second[0].attempts == 1
        assert second[0].payload == message.payload

    async def test_extend_keeps_the_lease(self, driver: Driver, queue: str) -> None:
        if not self.lease_expiry:
            pytest.skip("leases on this broker do not expire by time")
        vt = self.min_visibility_timeout
        await driver.enqueue(_msg(queue, visibility_timeout=vt))
        [delivery] = await self._take(driver, [queue], 1)
        for _ in range(3):
            await asyncio.sleep(vt / 2)
            await driver.extend([delivery], vt + 1.0)
        # 1.5 x vt has passed since the dequeue: without `extend` it would be back by now.
        assert await driver.dequeue([queue], limit=1, wait=vt / 2) == []
        await driver.ack([delivery])

    async def test_ack_removes_for_good(self, driver: Driver, queue: str) -> None:
        await driver.enqueue(_msg(queue, visibility_timeout=self.min_visibility_timeout))
        got = await self._take(driver, [queue], 1)
        await driver.ack(got)
        driver = await self.expire_leases(driver, got)
        assert await driver.dequeue([queue], limit=1, wait=self.delay_slack + 0.5) == []

    async def test_stale_receipt_does_not_touch_the_new_lease(
        self, driver: Driver, queue: str
    ) -> None:
        if not (self.lease_expiry and self.stale_receipts_ignored):
            pytest.skip("not applicable to this broker")
        await driver.enqueue(_msg(queue, visibility_timeout=self.min_visibility_timeout))
        first = await self._take(driver, [queue], 1)
        driver = await self.expire_leases(driver, first)
        second = await self._take(driver, [queue], 1, within=5.0)
        assert len(second) == 1
        await driver.ack(first)  # the first consumer finished late: its lease is gone
        await driver.extend(second, 30.0)
        await driver.retry(first[0], delay=0)
        assert await driver.dequeue([queue], limit=1, wait=0.5) == []
        await driver.ack(second)

    # -- acks that ride with a dequeue (AckingDequeue) -------------------------------------
    @staticmethod
    def _acking(driver: Driver) -> AckingDequeue:
        if not isinstance(driver, AckingDequeue):
            pytest.skip(f"{type(driver).__name__} acknowledges apart from its dequeues")
        return driver

    async def test_acks_ride_with_a_dequeue(self, driver: Driver, queue: str) -> None:
        acking = self._acking(driver)
        vt = self.min_visibility_timeout
        await driver.enqueue_many([_msg(queue, visibility_timeout=vt) for _ in range(4)])
        first = await self._take(driver, [queue], 2)
        second = await acking.ack_and_dequeue(first, [queue], limit=2, wait=1.0)
        assert second and {d.task_id for d in second}.isdisjoint(d.task_id for d in first)
        rest = await self._take(driver, [queue], 4 - len(first) - len(second))
        [stats] = await driver.stats([queue])
        assert (stats.ready, stats.in_flight) == (0, len(second) + len(rest))
        # nothing left to take: the acks are applied all the same
        assert await acking.ack_and_dequeue([*second, *rest], [queue], limit=4, wait=0) == []
        [stats] = await driver.stats([queue])
        assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)
        # acked for good: nothing comes back once the leases would have run out
        driver = await self.expire_leases(driver, [*first, *second, *rest])
        assert await driver.dequeue([queue], limit=4, wait=self.delay_slack + 0.5) == []

    # -- retry / release ---------------------------------------------------------------
    async def test_retry_reschedules_and_counts_attempts(self, driver: Driver, queue: str) -> None:
        message = _msg(queue)
        await driver.enqueue(message)
        [first] = await self._take(driver, [queue], 1)
        await driver.retry(first, delay=0)
        [second] = await self._take(driver, [queue], 1)
        assert (second.task_id, second.attempts) == (message.task_id, 1)
        assert second.payload == message.payload
        await driver.retry(second, delay=1.0)
        assert await driver.dequeue([queue], limit=1, wait=0.4) == []
        [third] = await self._take(driver, [queue], 1, within=1.0 + self.delay_slack + 3.0)
        assert (third.task_id, third.attempts) == (message.task_id, 2)

    async def test_release_gives_back_without_counting(self, driver: Driver, queue: str) -> None:
        message = _msg(queue)
        await driver.enqueue(message)
        first = await self._take(driver, [queue], 1)
        await driver.release(first)
        [again] = await self._take(driver, [queue], 1)
        assert (again.task_id, again.attempts) == (message.task_id, 0)

    # -- dead letters ------------------------------------------------------------------
    async def _dead_letter_one(self, driver: Driver, queue: str, note: str = "boom") -> str:
        message = _msg(queue)
        await driver.enqueue(message)
        [delivery] = await self._take(driver, [queue], 1)
        failure = Failure("builtins.RuntimeError", note, f"Traceback ...\nRuntimeError: {note}")
        await driver.dead_letter(delivery, failure)
        return message.task_id

    async def test_dead_letter_keeps_payload_and_error(self, driver: Driver, queue: str) -> None:
        message = _msg(queue, b'{"keep":"me"}')
        await driver.enqueue(message)
        [delivery] = await self._take(driver, [queue], 1)
        failure = Failure("builtins.ValueError", "bad value", "Traceback\nValueError: bad value")
        await driver.dead_letter(delivery, failure)
        assert await driver.dequeue([queue], limit=1, wait=0.5) == []
        [dead] = await driver.list_dead_letters(queue=queue)
        assert dead.task_id == message.task_id
        assert dead.queue == queue
        assert dead.payload == b'{"keep":"me"}'
        assert dead.failure == failure
        assert dead.attempts == 1
        assert isinstance(dead.failed_at, datetime)
        assert dead.failed_at.tzinfo is not None

    async def test_dead_letters_filter_by_task_id_and_queue(
        self, driver: Driver, queue: str
    ) -> None:
        other = queue + "-other"
        a = await self._dead_letter_one(driver, queue, "a")
        b = await self._dead_letter_one(driver, queue, "b")
        c = await self._dead_letter_one(driver, other, "c")
        assert {d.task_id for d in await driver.list_dead_letters(queue=queue)} == {a, b}
        assert [d.task_id for d in await driver.list_dead_letters(task_ids=[c])] == [c]
        assert [d.failure.message for d in await driver.list_dead_letters(task_ids=[b])] == ["b"]

    async def test_retry_dead_letter_puts_it_back(self, driver: Driver, queue: str) -> None:
        task_id = await self._dead_letter_one(driver, queue)
        assert await driver.retry_dead_letters(task_ids=[task_id]) == 1
        assert await driver.list_dead_letters(queue=queue) == []
        [delivery] = await self._take(driver, [queue], 1)
        assert delivery.task_id == task_id
        assert delivery.attempts == 0

    async def test_purge_dead_letters(self, driver: Driver, queue: str) -> None:
        a = await self._dead_letter_one(driver, queue)
        b = await self._dead_letter_one(driver, queue)
        assert await driver.purge_dead_letters(task_ids=[a]) == 1
        assert [d.task_id for d in await driver.list_dead_letters(queue=queue)] == [b]
        assert await driver.purge_dead_letters(queue=queue) == 1
        assert await driver.list_dead_letters(queue=queue) == []

    # -- batches and concurrency -------------------------------------------------------
    async def test_batch_enqueue_dequeue_ack(self, driver: Driver, queue: str) -> None:
        sent = [_msg(queue) for _ in range(25)]
        await driver.enqueue_many(sent)
        got = await self._take(driver, [queue], 25)
        assert sorted(d.task_id for d in got) == sorted(m.task_id for m in sent)
        await driver.ack(got)
        assert await driver.dequeue([queue], limit=5, wait=0.3) == []

    async def test_concurrent_consumers_never_share_a_live_message(
        self, driver: Driver, queue: str
    ) -> None:
        total = 60
        await driver.enqueue_many([_msg(queue) for _ in range(total)])
        seen: list[str] = []

        async def consume() -> None:
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 1.5 and len(seen) < total:
                got = await driver.dequeue([queue], limit=3, wait=0.2)
                if got:
                    idle_since = time.monotonic()
                seen.extend(d.task_id for d in got)

        await asyncio.wait_for(asyncio.gather(*(consume() for _ in range(6))), 30)
        assert len(seen) == total
        assert len(set(seen)) == total

    # -- inspection --------------------------------------------------------------------
    async def test_stats_and_queue_names(self, driver: Driver, queue: str) -> None:
        await driver.enqueue_many([_msg(queue) for _ in range(3)])
        await driver.enqueue(_msg(queue, delay=60))
        await self._dead_letter_one(driver, queue)
        [leased] = await self._take(driver, [queue], 1)
        await asyncio.sleep(0.2)
        [stats] = await driver.stats([queue])
        assert stats.queue == queue
        if self.exact_stats:
            assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (2, 1, 1, 1)
        else:
            assert stats.ready + stats.delayed + stats.in_flight >= 3
        assert queue in await driver.queue_names()
        await driver.ack([leased])

    async def test_purge_empties_a_queue(self, driver: Driver, queue: str) -> None:
        await driver.enqueue_many([_msg(queue) for _ in range(4)])
        await driver.enqueue(_msg(queue, delay=60))
        await asyncio.sleep(0.1)
        assert await driver.purge(queue) >= 4
        assert await driver.dequeue([queue], limit=5, wait=0.3) == []

    # -- results (drivers that are a ResultStore) ------------------------------------
    @staticmethod
    def _results(driver: Driver) -> ResultStore:
        if not isinstance(driver, ResultStore):
            pytest.skip(f"{type(driver).__name__} does not keep results")
        return driver

    async def test_a_result_waits_for_its_task(self, driver: Driver) -> None:
        store = self._results(driver)
        task_id = str(uuid.uuid4())
        assert await store.fetch_result(task_id, 0) is None
        started = time.monotonic()
        assert await store.fetch_result(task_id, 0.3) is None
        assert time.monotonic() - started >= 0.25
        waiter = asyncio.ensure_future(store.fetch_result(task_id, 60))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await store.store_result(task_id, b'{"ok":42}', 60)
        # Woken by the store, not by a slow poll: back long before its 60 s wait would end.
        assert await asyncio.wait_for(waiter, 2.5) == b'{"ok":42}'
        # any number of readers, any number of times; a re-run's result replaces it
        assert await store.fetch_result(task_id, 0) == b'{"ok":42}'
        await store.store_result(task_id, b'{"ok":43}', 60)
        assert await store.fetch_result(task_id, 0) == b'{"ok":43}'

    async def test_a_result_expires(self, driver: Driver) -> None:
        store = self._results(driver)
        task_id = str(uuid.uuid4())
        await store.store_result(task_id, b"x" * 10_000, 1)
        assert await store.fetch_result(task_id, 0) == b"x" * 10_000
        await asyncio.sleep(1.0 + self.delay_slack + 0.2)
        assert await store.fetch_result(task_id, 0) is None
