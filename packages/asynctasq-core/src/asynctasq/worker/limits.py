"""The worker's side of concurrency and rate limits: admit a run, or make it wait.

A message carrying limits (`asynctasq.core.limits.MessageLimits`) passes `admit` before its
code is loaded. The run takes a concurrency slot and/or reserves a start on the broker
(`asynctasq.core.limiter`); the slot is renewed while the run lasts and released when it
ends, whatever the outcome (the asyncio task that runs it is done).

A run that finds its limit full waits *on the broker*, not in the worker: its message is
retried with a short delay (exponential from `DEFER_BASE` per wait, up to `DEFER_CAP`, with
jitter; for a rate limit, no sooner than the moment a start could be reserved), so it holds
none of the worker's slots and the worker goes on with other tasks. The driver counts every
delivery as an attempt, so each wait is counted under ``deferred:<task id>`` (a claim whose
holder is the count, advanced by compare-and-replace before the retry), and the next
delivery subtracts it: waiting never uses up ``max_attempts``. The count is read only for a
limited message delivered before (attempts above 0), and dropped when the task ends.

A worker that runs no limited task never creates a gate: its cost is the envelope's one
``limits is None`` test per task.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asynctasq.core.limit_keys import limit_store
from asynctasq.core.limiter import (
    RateGuesses,
    new_holder,
    renew_slot,
    reserve_start,
    take_slot,
)
from asynctasq.core.limits import MIN_LIMIT_LEASE, MessageLimits
from asynctasq.drivers.base import ClaimStore, Delivery
from asynctasq.drivers.claims import held_count
from asynctasq.errors import LimitsNotSupportedError
from asynctasq.worker.failures import printable

if TYPE_CHECKING:
    from asynctasq.worker.job import Job
    from asynctasq.worker.worker import Worker

log = logging.getLogger("asynctasq.worker")

DEFER_BASE = 0.1
"""Seconds a run waits after its first failed try (doubling with each further one)."""
DEFER_CAP = 5.0
"""Longest wait between two tries of a concurrency limit (a rate limit may wait longer:
until a start can be reserved, up to a minute at a time)."""
RATE_WAIT_CAP = 60.0
"""Longest wait between two tries of a rate limit."""
DEFERRALS_TTL = 7 * 86400.0
"""How long a task's wait count is kept after its last wait (renewed at each)."""
_MAX_WAITS_DIGITS = 9
RENEW_TICK = MIN_LIMIT_LEASE / 3
"""Seconds between two looks for slots due for renewal (each is renewed every third of its
lease): short enough for the shortest lease."""

_gates: weakref.WeakKeyDictionary[Worker, LimitGate] = weakref.WeakKeyDictionary()


async def admit(worker: Worker, job: Job) -> bool:
    """Let `job` (a limited message) run now, or settle it: True when it may run.

    False when it was made to wait (retried later, not counted as an attempt) or could
    never run here (a driver without claims: dead-lettered).
    """
    gate = _gates.get(worker)
    if gate is None:
        gate = _gates[worker] = LimitGate(worker)
    return await gate.admit(job)


def defer_delay(waits: int, ready_in: float, rate_limited: bool) -> float:
    """Seconds before the `waits`-th try of a run that could not start: exponential with
    full jitter (a random time up to the backoff, at least half of `DEFER_BASE`), so runs
    that started waiting together do not come back together; no sooner than `ready_in`."""
    backoff: float = min(DEFER_BASE * 2.0 ** min(waits - 1, 20), DEFER_CAP)
    jittered = max(backoff * random.random(), DEFER_BASE / 2)
    if rate_limited:
        return min(max(ready_in, 0.0) + jittered, RATE_WAIT_CAP)
    return jittered


def _deferrals_key(task_id: str) -> str:
    return f"deferred:{task_id[:400]}"


@dataclass(slots=True)
class _Slot:
    base: str
    key: str
    holder: str
    lease: float
    renew_at: float


class LimitGate:
    """One worker's limits: admission, deferral, slot renewal and release."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._guesses = RateGuesses()
        self._slots: dict[str, _Slot] = {}  # by claim key
        self._held_here: dict[str, int] = {}  # base key -> slots this worker holds
        self._renewer: asyncio.Task[None] | None = None

    async def admit(self, job: Job) -> bool:
        """See `admit`."""
        worker, delivery = self._worker, job.delivery
        env = job.envelope
        assert env is not None and env.limits is not None and worker.driver is not None
        limits = env.limits
        try:
            store = limit_store(worker.driver, env.task)
        except LimitsNotSupportedError as exc:
            await worker._dead_letter(job, exc, "cannot run")
            return False
        waits, slot = 0, None
        try:
            if delivery.attempts:
                # Never more than the deliveries so far, whatever the count says.
                waits = min(await self._waits(store, delivery.task_id), delivery.attempts)
                # Deliveries that only waited were no runs: max_attempts counts runs.
                delivery.attempts = max(delivery.attempts - waits, 0)
            if delivery.attempts >= max(env.max_attempts, 1):
                return True  # lost too often: the worker dead-letters it, no limit needed
            slot, ready_in = await self._acquire(store, limits, delivery.task_id)
        except asyncio.CancelledError:
            await worker._release([delivery])  # stopping: give it back, uncounted
            raise
        except Exception as exc:
            # The broker failed: wait like a full limit (never run unchecked).
            log.warning(
                "checking the limits of task %s [%s] failed (%s: %s); it waits",
                printable(env.task),
                printable(delivery.task_id),
                type(exc).__name__,
                exc,
            )
            ready_in = 0.0
        if slot is None and ready_in is not None:
            await self._defer(job, store, waits, ready_in, limits)
            return False
        runner = asyncio.current_task()
        assert runner is not None
        retried = worker.stats.retried
        runner.add_done_callback(lambda _: self._ended(store, slot, delivery, waits, retried))
        return True

    # -- taking -----------------------------------------------------------------------------
    async def _acquire(
        self, store: ClaimStore, limits: MessageLimits, task_id: str
    ) -> tuple[_Slot | None, float | None]:
        """(the slot taken or None, None) when the run may start (after any reserved wait);
        (None, seconds until it may try again) when it must wait."""
        slot = None
        if limits.concurrency:
            if self._held_here.get(limits.key, 0) >= limits.concurrency:
                return None, 0.0  # this worker alone fills the limit: no round trip
            holder = new_holder(task_id)
            key = await take_slot(store, limits, holder)
            if key is None:
                return None, 0.0
            slot = self._hold(store, limits, key, holder)
        if limits.rate is not None:
            try:
                reservation = await reserve_start(
                    store, limits.rate_key, limits.rate, self._guesses
                )
                if reservation.taken:
                    if reservation.wait > 0:
                        await asyncio.sleep(reservation.wait)  # at most about a second
                    return slot, None
            except BaseException:
                if slot is not None:
                    self._let_go(store, slot)
                raise
            if slot is not None:
                self._let_go(store, slot)
            return None, reservation.wait
        return slot, None

    def _hold(self, store: ClaimStore, limits: MessageLimits, key: str, holder: str) -> _Slot:
        loop = asyncio.get_running_loop()
        slot = _Slot(limits.key, key, holder, limits.lease, loop.time() + limits.lease / 3)
        self._slots[key] = slot
        self._held_here[slot.base] = self._held_here.get(slot.base, 0) + 1
        if self._renewer is None:
            self._renewer = self._background(self._renew(store))
        return slot

    # -- waiting ----------------------------------------------------------------------------
    async def _waits(self, store: ClaimStore, task_id: str) -> int:
        """How many deliveries of `task_id` only waited (0 if none)."""
        return held_count(await store.read_claim(_deferrals_key(task_id)), _MAX_WAITS_DIGITS)

    async def _count_wait(self, store: ClaimStore, task_id: str, waits: int) -> None:
        key = _deferrals_key(task_id)
        for _ in range(3):  # a duplicate delivery may count at the same time
            current = await store.claim(
                key, str(waits + 1), DEFERRALS_TTL, replace=str(waits) if waits else None
            )
            if current is None:
                return
            waits = held_count(current, _MAX_WAITS_DIGITS)

    async def _defer(
        self,
        job: Job,
        store: ClaimStore,
        waits: int,
        ready_in: float,
        limits: MessageLimits,
    ) -> None:
        worker, delivery = self._worker, job.delivery
        try:
            # Counted before the retry: a crash in between leaves an uncounted delivery of
            # a run that never started, which is right.
            await self._count_wait(store, delivery.task_id, waits)
        except Exception as exc:
            log.warning(
                "counting a wait of task [%s] failed (%s: %s): it may count as an attempt",
                printable(delivery.task_id),
                type(exc).__name__,
                exc,
            )
        delay = defer_delay(waits + 1, ready_in, limits.rate is not None)
        driver = worker.driver
        assert driver is not None
        if await worker._settle("retry", lambda: driver.retry(delivery, delay=delay)):
            worker.stats.deferred += 1
            # A wait is no task processed: throughput (top, the dashboard) counts ends only.
            worker.stats.processed -= 1
            log.debug(
                "task %s [%s] waits %.2f s for its limit",
                printable(job.task_name),
                printable(delivery.task_id),
                delay,
            )

    # -- releasing ---------------------------------------------------------------------------
    def _ended(
        self,
        store: ClaimStore,
        slot: _Slot | None,
        delivery: Delivery,
        waits: int,
        retried: int,
    ) -> None:
        """The run is over (its asyncio task is done): free its slot; forget its waits
        unless it may run again (no retry was scheduled meanwhile by this worker; when one
        was, perhaps another task's, the count stays and its ttl drops it)."""
        if slot is not None:
            self._let_go(store, slot)
        if waits and self._worker.stats.retried == retried:
            self._background(store.release_claim(_deferrals_key(delivery.task_id), str(waits)))

    def _let_go(self, store: ClaimStore, slot: _Slot) -> None:
        if self._slots.pop(slot.key, None) is None:
            return
        left = self._held_here[slot.base] - 1
        if left:
            self._held_here[slot.base] = left
        else:
            del self._held_here[slot.base]
        self._background(store.release_claim(slot.key, slot.holder))

    async def _renew(self, store: ClaimStore) -> None:
        """Renew each held slot every third of its lease, while any is held."""
        loop = asyncio.get_running_loop()
        try:
            while self._slots:
                await asyncio.sleep(RENEW_TICK)
                now = loop.time()
                for slot in [s for s in self._slots.values() if s.renew_at <= now]:
                    slot.renew_at = now + slot.lease / 3
                    try:
                        kept = await renew_slot(store, slot.key, slot.holder, slot.lease)
                    except Exception as exc:
                        log.warning("renewing a concurrency slot failed (%s: %s)", type(exc), exc)
                        slot.renew_at = now + RENEW_TICK
                        continue
                    if not kept and slot.key in self._slots:
                        log.warning(
                            "a run lost its concurrency slot %s: its lease passed before it "
                            "was renewed (broker unreachable longer than limit_lease?); the "
                            "limit may be exceeded until it ends",
                            printable(slot.key),
                        )
        finally:
            self._renewer = None

    def _background(self, work: Awaitable[object]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(_quietly(work))
        background = self._worker._background
        background.add(task)
        task.add_done_callback(background.discard)
        return task


async def _quietly(work: Awaitable[object]) -> None:
    # A release that fails is freed by its ttl; it must not log as an unhandled error.
    try:
        await work
    except Exception as exc:
        log.warning("releasing a limit claim failed (%s: %s); its ttl frees it", type(exc), exc)


__all__ = ["DEFER_BASE", "DEFER_CAP", "LimitGate", "admit", "defer_delay"]
