"""An in-memory driver for unit tests of the core: one process, no persistence.

It keeps the full contract (leases, delivery counts, delays, dead letters) so the worker's
behaviour can be tested without a server; it is not a broker stand-in for production.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asynctasq.drivers._memory_claims import MemoryClaims, claim_state
from asynctasq.drivers._memory_inspect import MemoryInspection
from asynctasq.drivers._memory_lifecycle import MemoryLifecycle, lifecycle_state
from asynctasq.drivers.base import (
    DeadLetter,
    Delivery,
    Failure,
    OutgoingMessage,
    QueueStats,
)


@dataclass(slots=True)
class _Record:
    task_id: str
    queue: str
    payload: bytes
    visibility_timeout: float
    deliveries: int = 0
    lease: int | None = None  # the receipt of the live lease, if any
    leased_until: float = 0.0
    priority: int = 0


@dataclass(slots=True)
class _State:
    records: dict[str, _Record] = field(default_factory=dict)
    # per queue, a heap of (-priority, seq, id): highest priority first, then oldest first
    ready: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    delayed: list[tuple[float, int, str]] = field(default_factory=list)  # (due, seq, id)
    leases: list[tuple[float, int, str]] = field(default_factory=list)  # (expires, receipt, id)
    dead: dict[str, DeadLetter] = field(default_factory=dict)
    dead_priority: dict[str, int] = field(default_factory=dict)  # id -> priority, when not 0
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    changed: asyncio.Event | None = None
    changed_loop: asyncio.AbstractEventLoop | None = None
    results: dict[str, tuple[bytes, float]] = field(default_factory=dict)  # id -> (data, until)
    stored: asyncio.Condition | None = None
    stored_loop: asyncio.AbstractEventLoop | None = None


_shared: dict[str, _State] = {}
_shared_lifecycle: dict[str, object] = {}
_shared_claims: dict[str, object] = {}


def forget_namespace(namespace: str) -> None:
    """Drop everything kept for `namespace` (queues, status records, event logs, claims):
    a test's namespace once the test is over, so a long test run does not keep them all.
    Drivers still holding it keep their state; new ones start empty."""
    for shared in (_shared, _shared_lifecycle, _shared_claims):
        shared.pop(namespace, None)


class MemoryDriver(MemoryLifecycle, MemoryClaims, MemoryInspection):
    """Queues in dicts, in this process only.

    Args:
        namespace: Instances created with the same namespace share their queues (within one
            process), so a script's dispatches and a worker started later in the same process
            see the same tasks. None (the default) gives the instance queues of its own.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace
        if namespace is None:
            self._s = _State()
        else:
            self._s = _shared.setdefault(namespace, _State())
        self._l = lifecycle_state(_shared_lifecycle, namespace)
        self._c = claim_state(_shared_claims, namespace)

    def __repr__(self) -> str:
        return f"MemoryDriver(namespace={self.namespace!r})"

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- enqueue -----------------------------------------------------------------------
    async def enqueue(self, message: OutgoingMessage) -> None:
        self._store(message)
        self._notify()
        await self._after_enqueue()

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        for message in messages:
            self._store(message)
        self._notify()
        await self._after_enqueue()

    def _store(self, message: OutgoingMessage) -> None:
        if message.task_id in self._s.records:
            raise ValueError(f"task id {message.task_id!r} is already queued")
        record = _Record(
            message.task_id,
            message.queue,
            message.payload,
            message.visibility_timeout,
            priority=message.priority,
        )
        self._s.records[message.task_id] = record
        self._schedule(record, message.delay)

    def _schedule(self, record: _Record, delay: float) -> None:
        if delay > 0:
            heapq.heappush(
                self._s.delayed, (time.monotonic() + delay, next(self._s.seq), record.task_id)
            )
        else:
            self._ready(record)

    def _ready(self, record: _Record) -> None:
        heap = self._s.ready.setdefault(record.queue, [])
        heapq.heappush(heap, (-record.priority, next(self._s.seq), record.task_id))

    def _notify(self) -> None:
        if self._s.changed is not None:
            self._s.changed.set()

    # -- dequeue -----------------------------------------------------------------------
    def _promote(self, now: float) -> float | None:
        """Move due delayed messages and expired leases to ready; return the next due time."""
        while self._s.delayed and self._s.delayed[0][0] <= now:
            _, _, task_id = heapq.heappop(self._s.delayed)
            record = self._s.records.get(task_id)
            if record is not None and record.lease is None:
                self._ready(record)
        while self._s.leases and self._s.leases[0][0] <= now:
            _, receipt, task_id = heapq.heappop(self._s.leases)
            record = self._s.records.get(task_id)
            if record is None or record.lease != receipt:
                continue  # already settled or re-leased
            if record.leased_until > now:  # extended since; its newer heap entry decides
                continue
            record.lease = None
            self._ready(record)
        nexts = [h[0][0] for h in (self._s.delayed, self._s.leases) if h]
        return min(nexts) if nexts else None

    def _take(self, queues: Sequence[str], limit: int, now: float) -> list[Delivery]:
        out: list[Delivery] = []
        for queue in queues:
            ready = self._s.ready.get(queue)
            while ready and len(out) < limit:
                task_id = heapq.heappop(ready)[2]
                record = self._s.records.get(task_id)
                if record is None or record.lease is not None:
                    continue
                receipt = next(self._s.seq)
                record.lease = receipt
                record.leased_until = now + record.visibility_timeout
                heapq.heappush(self._s.leases, (record.leased_until, receipt, task_id))
                out.append(
                    Delivery(
                        task_id=task_id,
                        queue=record.queue,
                        payload=record.payload,
                        attempts=record.deliveries,
                        receipt=receipt,
                        visibility_timeout=record.visibility_timeout,
                    )
                )
                record.deliveries += 1
            if len(out) >= limit:
                break
        return out

    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        deadline = time.monotonic() + max(wait, 0.0)
        loop = asyncio.get_running_loop()
        if self._s.changed is None or self._s.changed_loop is not loop:
            self._s.changed, self._s.changed_loop = asyncio.Event(), loop
        while True:
            now = time.monotonic()
            next_due = self._promote(now)
            out = self._take(queues, limit, now)
            if out or now >= deadline:
                return out
            changed = self._s.changed
            changed.clear()
            timeout = deadline - now if next_due is None else min(deadline, next_due) - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(timeout, 0.0))

    # -- settle ------------------------------------------------------------------------
    def _held(self, delivery: Delivery) -> _Record | None:
        record = self._s.records.get(delivery.task_id)
        if record is None or record.lease != delivery.receipt:
            return None
        return record

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            if self._held(delivery) is not None:
                del self._s.records[delivery.task_id]

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            record = self._held(delivery)
            if record is not None:
                record.lease = None
                record.deliveries = max(record.deliveries - 1, 0)
                self._schedule(record, 0)
        self._notify()

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        record = self._held(delivery)
        if record is not None:
            record.lease = None
            self._schedule(record, delay)
            self._notify()

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        record = self._held(delivery)
        if record is None:
            return
        del self._s.records[delivery.task_id]
        self._s.dead[delivery.task_id] = DeadLetter(
            task_id=record.task_id,
            queue=record.queue,
            payload=record.payload,
            failure=failure,
            attempts=record.deliveries,
            failed_at=datetime.now(UTC),
        )
        if record.priority:
            self._s.dead_priority[delivery.task_id] = record.priority

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        until = time.monotonic() + visibility_timeout
        for delivery in deliveries:
            record = self._held(delivery)
            if record is not None:
                record.leased_until = until
                # A shorter lease needs its own heap entry; stale entries are skipped later.
                heapq.heappush(self._s.leases, (until, delivery.receipt, record.task_id))

    # -- inspection --------------------------------------------------------------------
    async def queue_names(self) -> list[str]:
        names = {r.queue for r in self._s.records.values()} | {
            d.queue for d in self._s.dead.values()
        }
        return sorted(names)

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        out = []
        for queue in queues:
            ready = delayed = in_flight = 0
            ready_ids = {task_id for _, _, task_id in self._s.ready.get(queue, ())}
            for record in self._s.records.values():
                if record.queue != queue:
                    continue
                if record.lease is not None:
                    in_flight += 1
                elif record.task_id in ready_ids:
                    ready += 1
                else:
                    delayed += 1
            dead = sum(1 for d in self._s.dead.values() if d.queue == queue)
            out.append(QueueStats(queue, ready, delayed, in_flight, dead))
        return out

    def _select_dead(self, queue: str | None, task_ids: Sequence[str] | None) -> list[DeadLetter]:
        wanted = set(task_ids) if task_ids is not None else None
        return [
            d
            for d in self._s.dead.values()
            if (queue is None or d.queue == queue) and (wanted is None or d.task_id in wanted)
        ]

    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        return self._select_dead(queue, task_ids)[:limit]

    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        chosen = self._select_dead(queue, task_ids)
        for dead in chosen:
            del self._s.dead[dead.task_id]
            priority = self._s.dead_priority.pop(dead.task_id, 0)
            self._store(OutgoingMessage(dead.task_id, dead.queue, dead.payload, priority=priority))
        self._notify()
        return len(chosen)

    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        chosen = self._select_dead(queue, task_ids)
        for dead in chosen:
            del self._s.dead[dead.task_id]
            self._s.dead_priority.pop(dead.task_id, None)
        return len(chosen)

    # -- results -----------------------------------------------------------------------
    def _result_condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._s.stored is None or self._s.stored_loop is not loop:
            self._s.stored, self._s.stored_loop = asyncio.Condition(), loop
        return self._s.stored

    async def store_result(self, task_id: str, result: bytes, ttl: float) -> None:
        now = time.monotonic()
        for key in [k for k, (_, until) in self._s.results.items() if until <= now]:
            del self._s.results[key]
        self._s.results[task_id] = (result, now + ttl)
        stored = self._result_condition()
        async with stored:
            stored.notify_all()

    def _result(self, task_id: str) -> bytes | None:
        kept = self._s.results.get(task_id)
        if kept is None or kept[1] <= time.monotonic():
            return None
        return kept[0]

    async def fetch_result(self, task_id: str, wait: float) -> bytes | None:
        stored = self._result_condition()
        with contextlib.suppress(TimeoutError):
            async with stored:
                await asyncio.wait_for(
                    stored.wait_for(lambda: self._result(task_id) is not None), max(wait, 0.0)
                )
        return self._result(task_id)

    async def purge(self, queue: str) -> int:
        doomed = [
            r.task_id for r in self._s.records.values() if r.queue == queue and r.lease is None
        ]
        for task_id in doomed:
            del self._s.records[task_id]
        self._s.ready.pop(queue, None)
        return len(doomed)
