"""Keeping the leases of running tasks alive, in batches, from one background task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict

from asynctasq.background import cancel_requested
from asynctasq.drivers.base import Delivery, Driver

log = logging.getLogger("asynctasq.worker")


MIN_RENEW_INTERVAL = 0.05
"""Shortest time between two renewals of a lease: a tiny visibility timeout (it comes from
the message) must not make the worker renew in a tight loop."""


MAX_RENEW_INTERVAL = 3600.0
"""Longest time between two renewals: a lease of days is renewed hourly, and an absurd one
(infinite, from a record written behind the driver's back) still gets a finite time."""


class LeaseKeeper:
    """Renews each running task's lease before it runs out.

    A lease granted for ``g`` seconds is renewed when half of it has passed, to the task's
    own visibility timeout; renewals due together go to the driver as one `extend` call.
    """

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._due: dict[int, tuple[float, Delivery, float]] = {}  # id -> (renew_at, d, vt)
        self._wake = asyncio.Event()
        self._next_wake = float("inf")

    def track(self, delivery: Delivery, visibility_timeout: float) -> None:
        """Renew `delivery`'s lease (to `visibility_timeout` seconds each time) until `forget`.

        Tracked again (a prefetched task that starts, with its own visibility timeout), it
        keeps the renewal already due: the lease was granted or renewed back then, not now,
        and a later renewal could come after it ran out.
        """
        key = id(delivery)
        # A record written behind the driver's back may hold any lease (the worker refuses
        # it right after): the keeper must still compute with it, and never renew with it.
        granted = delivery.visibility_timeout
        half = granted / 2 if _usable(granted) else MIN_RENEW_INTERVAL
        renew_at = time.monotonic() + _interval(half)
        if not _usable(visibility_timeout):
            visibility_timeout = 2 * MIN_RENEW_INTERVAL
        tracked = self._due.get(key)
        if tracked is not None:
            renew_at = min(renew_at, tracked[0])
        self._due[key] = (renew_at, delivery, visibility_timeout)
        if renew_at < self._next_wake:
            self._wake.set()

    def renew_to(self, delivery: Delivery, visibility_timeout: float) -> None:
        """Renew a tracked `delivery`'s lease to `visibility_timeout` from now on (a task's
        own, once its message is read), keeping the renewal already due."""
        key = id(delivery)
        tracked = self._due.get(key)
        if tracked is not None and tracked[2] != visibility_timeout:
            self._due[key] = (tracked[0], delivery, visibility_timeout)

    def forget(self, delivery: Delivery) -> None:
        """Stop renewing (the task ended)."""
        self._due.pop(id(delivery), None)

    async def run(self) -> None:
        """Renew due leases until cancelled."""
        while not cancel_requested():
            now = time.monotonic()
            due = [(d, vt) for renew_at, d, vt in self._due.values() if renew_at <= now]
            if due:
                await self._renew(due)
                continue
            self._next_wake = min((r for r, _, _ in self._due.values()), default=now + 60)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(self._next_wake - now, 0.01))

    async def _renew(self, due: list[tuple[Delivery, float]]) -> None:
        groups: dict[float, list[Delivery]] = defaultdict(list)
        for delivery, vt in due:
            groups[vt].append(delivery)
        for vt, deliveries in groups.items():
            try:
                await self._driver.extend(deliveries, vt)
                retry_in = _interval(vt / 2)
            except Exception:
                log.warning(
                    "renewing %d lease(s) failed; will try again", len(deliveries), exc_info=True
                )
                retry_in = max(min(vt / 4, 1.0), MIN_RENEW_INTERVAL)
            renew_at = time.monotonic() + retry_in
            for delivery in deliveries:
                key = id(delivery)
                if key in self._due:
                    self._due[key] = (renew_at, delivery, vt)


def _interval(seconds: float) -> float:
    """`seconds` kept between the shortest and the longest time between two renewals."""
    return min(max(seconds, MIN_RENEW_INTERVAL), MAX_RENEW_INTERVAL)


def _usable(seconds: object) -> bool:
    """Whether `seconds` is a usable lease length: a positive finite number (bool is not)."""
    return type(seconds) in _NUMBERS and 0 < seconds < math.inf  # type: ignore[operator]


_NUMBERS = (float, int)
