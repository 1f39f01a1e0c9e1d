"""What schedules keep on the broker, through the driver's `ClaimStore`.

* ``schedule:<name>:<tick>``, held by the worker that won the tick: whoever takes it
  dispatches the tick; everyone else sees it taken. Kept longer than the grace period, so a
  tick can never be claimed twice while some scheduler could still fire it.
* ``schedule:<name>:last``, held by the last tick claimed (its epoch seconds as text): only
  for display (``asynctasq schedules``) and for the log of skipped ticks; exactly-once never
  depends on it.

Holders are read from the broker: anything that is not a plain number is treated as unknown.

Each tick's task has a deterministic id (`tick_task_id`), so a tick dispatched twice shows as
one id twice, in the queue and in the events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from asynctasq.drivers.base import ClaimStore

CLAIM_MARGIN = 300.0
"""Seconds a tick's claim outlives the grace period (room for clock differences)."""
LAST_TTL = 400 * 86400.0
"""Seconds ``schedule:<name>:last`` is kept after its last update (longer than a year, so a
yearly schedule still shows its last tick)."""
CLAIM_DRIVERS = "redis, postgres, mysql, sqlite, memory"
"""First-party drivers that keep claims (named in errors)."""
TICK_NAMESPACE = uuid.UUID("5c1fd0d2-7e0b-5b43-9d1a-2f4c8a6e0b17")
"""The namespace of `tick_task_id` (fixed forever: changing it changes every tick's id)."""


def tick_key(name: str, tick: int) -> str:
    """The claim of one tick."""
    return f"schedule:{name}:{tick}"


def tick_task_id(name: str, tick: int) -> str:
    """The id of the task that tick `tick` (epoch seconds) of schedule `name` dispatches: a
    version 5 UUID of both, the same in every scheduler."""
    return str(uuid.uuid5(TICK_NAMESPACE, f"{name}:{tick}"))


def last_key(name: str) -> str:
    """The claim whose holder is the last tick claimed."""
    return f"schedule:{name}:last"


MAX_TICK = int(datetime(9999, 12, 30, tzinfo=UTC).timestamp())
"""The latest tick a `datetime` shows in any time zone; a stored one past it is not a tick
(whoever can write to the broker can store anything)."""


def parse_tick(holder: str | None) -> int | None:
    """A tick stored as a holder, or None when there is none or it is not a tick."""
    if holder is None or not (0 < len(holder) <= 12) or not holder.isascii():
        return None
    if not holder.isdigit():
        return None
    tick = int(holder)
    return tick if tick <= MAX_TICK else None


def claim_store(driver: Any) -> ClaimStore:
    """`driver` as a `ClaimStore`.

    Raises:
        TypeError: the driver keeps no claims (the message names the drivers that do).
    """
    if not isinstance(driver, ClaimStore):
        raise TypeError(
            f"schedules need a driver that keeps claims, and {type(driver).__name__} does not; "
            f"use one that does ({CLAIM_DRIVERS}). Workers on other brokers can run tasks, "
            "but cannot run the scheduler (leave --schedules off there)"
        )
    return driver


async def read_last(store: ClaimStore, name: str) -> int | None:
    """The last tick claimed for schedule `name`, or None (never, expired, or unreadable)."""
    return parse_tick(await store.read_claim(last_key(name)))


def as_datetime(tick: int, zone: Any) -> datetime:
    """A tick as an aware datetime in `zone`."""
    return datetime.fromtimestamp(tick, zone)


__all__ = [
    "CLAIM_DRIVERS",
    "CLAIM_MARGIN",
    "LAST_TTL",
    "TICK_NAMESPACE",
    "as_datetime",
    "claim_store",
    "last_key",
    "parse_tick",
    "read_last",
    "tick_key",
    "tick_task_id",
]
