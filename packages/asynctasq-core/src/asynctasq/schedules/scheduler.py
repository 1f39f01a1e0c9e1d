"""The scheduler: dispatches each due tick of each schedule, once across all replicas.

Every scheduler (any number of workers run one) computes the same ticks and, when one is
due, claims ``schedule:<name>:<tick>`` on the broker; only the one whose claim is taken
dispatches. Between ticks it sleeps until the next one (at most `MAX_SLEEP`, so a clock
that jumps is noticed), and a stop wakes it at once.

Misfires: a tick is due from its instant until ``grace`` seconds after it. A scheduler that
comes back (or wakes late) finds the ticks it missed: with ``catch_up=False`` only the latest
one still within the grace period fires, the older ones are skipped and logged; with
``catch_up=True`` every one within the grace period fires, oldest first. Ticks older than
the grace period never fire. A schedule's first run (no tick of it on record) fires only
the latest due tick, even with ``catch_up``, and logs no missed
ticks: there was no earlier run to miss them.

A dispatch that fails gives the tick's claim back and is retried (with backoff) while the
tick is within the grace period. A scheduler killed between its claim and its dispatch loses
that one tick: its claim holds until it expires. A tick's task has the same id in every
scheduler (`tick_task_id`): a tick queued twice (a dispatch that failed after the broker had
it, retried) shows as one id twice.

``schedule-fired`` is published only once the tick's task is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asynctasq.core.dispatch import dispatch
from asynctasq.drivers.base import ClaimStore, Driver, EventLog
from asynctasq.lifecycle import events
from asynctasq.lifecycle.events import EventType
from asynctasq.schedules.claims import (
    CLAIM_MARGIN,
    LAST_TTL,
    claim_store,
    last_key,
    parse_tick,
    read_last,
    tick_key,
    tick_task_id,
)
from asynctasq.schedules.registry import Schedule, schedules

if TYPE_CHECKING:
    from asynctasq.worker.worker import Worker

log = logging.getLogger("asynctasq.schedules")

MAX_SLEEP = 30.0
"""Longest sleep between two passes (a wall clock that jumps is noticed within it)."""
WAKE_MARGIN = 0.002
"""Seconds slept past a tick: an event loop may wake a timer a little early."""
RETRY_FIRST, RETRY_CAP = 0.5, 30.0
"""Backoff of a tick whose claim or dispatch failed (broker down)."""


@dataclass(slots=True)
class _Cursor:
    """Where one scheduler is in one schedule."""

    schedule: Schedule
    next: int | None  # the first tick not handled yet (None: the schedule fires no more)
    last_guess: str | None = None  # what we believe `schedule:<name>:last` holds
    retry_at: float = 0.0
    backoff: float = 0.0
    first_run: bool = False  # no tick on record: only the latest due one fires


class Scheduler:
    """Fires the ticks of `schedules` through `driver`, once across replicas.

    Args:
        driver: The broker: its `ClaimStore` holds the claims; tasks that name no driver of
            their own are dispatched to it.
        schedules: The schedules to run.
        holder: This scheduler's name in the claims it takes (the worker id).
        grace: Seconds after its instant a tick may still fire (see the module docstring).
        events: Publish ``schedule-fired`` and ``schedule-skipped`` (if the driver keeps an
            event log).
        events_retention: Seconds those events are kept.
        clock: Wall-clock time in epoch seconds (tests pass their own).

    Raises:
        TypeError: the driver keeps no claims (names the drivers that do).
        ValueError: `grace` is not a number of seconds >= 0.
    """

    def __init__(
        self,
        driver: Driver,
        schedules: Sequence[Schedule],
        *,
        holder: str,
        grace: float,
        events: bool = False,
        events_retention: float = events.DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.driver = driver
        self._claims: ClaimStore = claim_store(driver)
        if isinstance(grace, bool) or not isinstance(grace, int | float):
            raise ValueError(f"grace must be a number of seconds, got {grace!r}")
        if not (math.isfinite(grace) and grace >= 0):
            raise ValueError(f"grace must be a finite number of seconds >= 0, got {grace!r}")
        self.grace = float(grace)
        self.holder = holder[:256]
        self.schedules = list(schedules)
        self._events = driver if events and isinstance(driver, EventLog) else None
        self._events_retention = events_retention
        self._clock = clock
        self._cursors: list[_Cursor] | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.fired = 0
        """Ticks this scheduler dispatched."""

    @classmethod
    def for_worker(cls, worker: Worker, driver: Driver) -> Scheduler:
        """The scheduler a worker runs with ``schedules=True``: the schedules its imports
        declared, its driver, its id as the holder, the configured grace period."""
        return cls(
            driver,
            schedules(),
            holder=worker.worker_id,
            grace=worker.config.schedules.grace,
            events=worker.events,
            events_retention=worker.config.events.retention,
        )

    # -- running beside a worker -------------------------------------------------------------
    def start(self, stop: asyncio.Event | None = None) -> None:
        """Run in the background until `stop` is set or `stop()` is called."""
        self._stop = stop or asyncio.Event()
        if not self.schedules:
            log.warning(
                "the scheduler is on but no schedules are declared: import the modules that "
                "declare them (asynctasq worker --import myapp.tasks)"
            )
            return
        log.info(
            "scheduler on: %s",
            ", ".join(f"{s.name} ({s.when.describe()})" for s in self.schedules),
        )
        self._task = asyncio.get_running_loop().create_task(
            self.run(self._stop), name="asynctasq-scheduler"
        )

    async def stop(self) -> None:
        """Stop firing (a pass under way finishes its current tick) and wait for the loop."""
        if self._stop is not None:
            self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 10)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Fire ticks as they come until `stop` is set."""
        while not stop.is_set():
            now = self._clock()
            try:
                wake = await self.run_once(now)
            except Exception:  # a bug must not end the worker; try again shortly
                log.exception("the scheduler's pass failed")
                wake = now + 1.0
            delay = min(max(wake - self._clock(), 0.0) + WAKE_MARGIN, MAX_SLEEP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    # -- one pass ------------------------------------------------------------------------------
    async def run_once(self, now: float | None = None) -> float:
        """Fire what is due at `now` (default: the clock); return when the next tick is due
        (epoch seconds)."""
        now = self._clock() if now is None else now
        if self._cursors is None:
            self._cursors = await self._begin(now)
        wake = now + MAX_SLEEP
        for cursor in self._cursors:
            if cursor.next is not None and cursor.next <= now and cursor.retry_at <= now:
                await self._due(cursor, now)
            if cursor.next is not None:
                wake = min(wake, max(cursor.next, cursor.retry_at))
        return wake

    async def _begin(self, now: float) -> list[_Cursor]:
        """Cursors at the start of the grace window, or after the last tick on record if
        that is later: a tick missed while no scheduler ran is still found (its claim says
        whether someone fired it), and one before the last was not missed."""
        cursors = []
        window = math.ceil(now - self.grace)
        for s in self.schedules:
            cursor = _Cursor(s, s.when.next_after(window - 1))
            try:
                cursor.last_guess = await self._claims.read_claim(last_key(s.name))
            except Exception as exc:
                log.warning("reading the last tick of schedule %s failed: %s", s.name, exc)
            else:
                last = parse_tick(cursor.last_guess)
                if last is not None and last > now + self.grace:
                    last = None  # further ahead than any clock skew: forged, not believed
                # Nothing on record: the ticks before this start were not missed, the
                # schedule did not run yet (even with catch_up: a new schedule of 5 s and a
                # grace of 60 would fire 12 times at once).
                cursor.first_run = last is None
                missed = s.when.next_after(last) if last is not None else None
                if last is not None and last >= window:
                    # Ticks up to the last one fired were fired, or passed over on purpose
                    # (a first run fires only its latest; an earlier interval had other
                    # ticks): a replica starting now must not take them for missed ones.
                    cursor.next = missed
                elif missed is not None and missed < window:  # every scheduler was down
                    await self._skipped(cursor, missed, window - 1, "older than the grace period")
            cursors.append(cursor)
        return cursors

    async def _due(self, cursor: _Cursor, now: float) -> None:
        s = cursor.schedule
        assert cursor.next is not None
        window = math.ceil(now - self.grace)
        if cursor.next < window:  # this scheduler slept past the grace period
            await self._skipped(cursor, cursor.next, window - 1, "older than the grace period")
            cursor.next = s.when.next_after(window - 1)
            if cursor.next is None or cursor.next > now:
                return
        due = s.when.ticks(cursor.next - 1, math.floor(now))
        if not due:
            return
        fire = due if s.catch_up and not cursor.first_run else due[-1:]
        if len(due) > len(fire):
            await self._skipped(cursor, due[0], due[-2], "catch_up=False fires only the latest")
        cursor.first_run = False
        for tick in fire:
            if not await self._fire(cursor, tick, now):
                cursor.next = tick  # retried after the backoff, while within the grace period
                return
        cursor.next = s.when.next_after(due[-1])
        cursor.backoff = 0.0

    async def _fire(self, cursor: _Cursor, tick: int, now: float) -> bool:
        """Claim `tick` and dispatch it if the claim is ours; False when it must be retried."""
        s = cursor.schedule
        key = tick_key(s.name, tick)
        try:
            taken_by = await self._claims.claim(key, self.holder, self.grace + CLAIM_MARGIN)
        except Exception as exc:
            self._retry_later(cursor, now, f"claiming tick {tick}", exc)
            return False
        if taken_by is not None:
            cursor.last_guess = str(tick)  # its winner records it as the last tick
            return True
        try:
            task = s.make_task()
            if task._driver() is None:
                task._driver_override = self.driver
            task_id = await dispatch(task, task_id=tick_task_id(s.name, tick))
        except Exception as exc:
            # Given back so that this or another scheduler fires the tick: a task is never
            # lost to a broker blip (at worst, a dispatch that failed late runs twice).
            with contextlib.suppress(Exception):
                await self._claims.release_claim(key, self.holder)
            self._retry_later(cursor, now, f"dispatching tick {tick}", exc)
            return False
        self.fired += 1
        log.info("schedule %s: tick %d dispatched as task %s", s.name, tick, task_id)
        await self._record_last(cursor, tick)
        await self._publish(
            EventType.SCHEDULE_FIRED,
            task_id=str(task_id),
            task_name=s.task_name,
            data={"schedule": s.name, "tick": tick},
        )
        return True

    def _retry_later(self, cursor: _Cursor, now: float, what: str, exc: Exception) -> None:
        cursor.backoff = min(cursor.backoff * 2 or RETRY_FIRST, RETRY_CAP)
        cursor.retry_at = now + cursor.backoff
        log.warning(
            "schedule %s: %s failed (%s: %s); retrying in %.1f s",
            cursor.schedule.name,
            what,
            type(exc).__name__,
            exc,
            cursor.backoff,
        )

    async def _record_last(self, cursor: _Cursor, tick: int) -> None:
        """Advance ``schedule:<name>:last`` to `tick` unless a later tick is there already."""
        key, value = last_key(cursor.schedule.name), str(tick)
        guess = cursor.last_guess
        try:
            for _ in range(3):
                current = await self._claims.claim(key, value, LAST_TTL, replace=guess)
                if current is None:
                    cursor.last_guess = value
                    return
                known = parse_tick(current)
                if known is not None and known >= tick:
                    cursor.last_guess = current
                    return
                guess = current
        except Exception as exc:  # display only: the tick itself is dispatched
            log.debug("recording the last tick of %s failed: %s", cursor.schedule.name, exc)

    async def _skipped(self, cursor: _Cursor, first: int, until: int, why: str) -> None:
        """Log the ticks from `first` up to the instant `until` that this scheduler will not
        fire, unless another scheduler claimed them already (then nothing was missed), or no
        tick was ever recorded (the schedule's first run: no earlier run missed them)."""
        s = cursor.schedule
        try:
            claimed = await read_last(self._claims, s.name)
        except Exception:
            claimed = None  # unknown: reported, since ticks may have been missed
        else:
            if claimed is None and parse_tick(cursor.last_guess) is None:
                log.info("schedule %s: first run (no earlier tick on record)", s.name)
                return
        if claimed is not None and claimed >= first:
            if claimed >= until:
                return
            first = s.when.next_after(claimed) or first
            if first > until:
                return
        log.warning(
            "schedule %s: missed tick(s) from %d to %d skipped (%s)", s.name, first, until, why
        )
        await self._publish(
            EventType.SCHEDULE_SKIPPED,
            task_name=s.task_name,
            data={"schedule": s.name, "first": first, "until": until, "reason": why},
        )

    async def _publish(self, type_: EventType, **fields: Any) -> None:
        if self._events is None:
            return
        event = events.make(type_, worker=self.holder, **fields)
        try:
            await self._events.append_log(events.LOG, [event.encode()], self._events_retention)
        except Exception as exc:
            log.debug("publishing %s failed: %s", type_, exc)


__all__ = ["MAX_SLEEP", "Scheduler"]
