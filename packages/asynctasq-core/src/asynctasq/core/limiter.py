"""Concurrency slots and rate reservations, kept on the broker through its `ClaimStore`.

Both use nothing but the claim operations every claim-holding driver has (an atomic claim
with a ttl, compare-and-replace, compare-and-delete), so Redis, PostgreSQL, MySQL, SQLite
and the in-memory driver enforce them alike, with no code of their own.

Concurrency (at most N runs at once)
    N claim keys ``<key>:c0`` .. ``<key>:c<N-1>``. A run takes a free one for a unique
    holder (``<task id>/<random>``) with a lease ttl; its worker renews the lease while the
    run lasts (a claim replacing its own holder) and releases it at the end (compare and
    delete). A slot of a worker that died frees itself when the lease passes: never leaked.
    Taking a slot tries the keys from a random one on: one round trip when the limit has
    room, N when it is full (then the run waits and tries later, see
    `asynctasq.worker.limits`).

Rate (at most C starts per P seconds)
    The generic cell rate algorithm in its reservation form, one key ``<key>:r`` holding the
    *theoretical arrival time* (TAT): the earliest moment the next start may happen. A
    start at ``max(tat, now)`` is reserved by replacing the TAT with that moment plus the
    interval ``P / C``, compare-and-replace on the value read (a lost race returns the
    winner's value: retry from it). Reserved starts are therefore at least one interval
    apart whichever worker made them, so at most C fall in any window of P seconds (a
    sliding window, not a fixed one that allows 2C across a boundary); the price is no
    bursts. A reservation is accepted only when its moment is at most `reserve_ahead`
    away; the run then sleeps until it (at most about a second), else it waits and tries
    later. One round trip per start when this worker guessed the TAT right (its last value),
    two otherwise, more under contention. The moments come from the workers' clocks:
    keep them synchronised (NTP); a skew of s seconds lets about ``s / interval`` starts
    through early.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from dataclasses import dataclass, field

from asynctasq.core.limits import MessageLimits, Rate
from asynctasq.drivers.base import ClaimStore

MAX_RESERVE_AHEAD = 1.0
"""Longest a run sleeps for a reserved start (it holds a worker slot meanwhile)."""
CAS_TRIES = 8
"""Compare-and-replace attempts on a rate key before the run waits instead (contention)."""


def new_holder(task_id: str) -> str:
    """A slot holder for one run of `task_id`: the id stays readable in the broker, and two
    deliveries of one task (at-least-once) never take each other's slot for their own."""
    return f"{task_id[:200]}/{os.urandom(6).hex()}"


async def take_slot(store: ClaimStore, limits: MessageLimits, holder: str) -> str | None:
    """Take a free concurrency slot for `holder` (lease: `limits.lease`); its claim key, or
    None when all are taken."""
    count = limits.concurrency
    start = random.randrange(count)  # spreads runs over the keys: one try while there is room
    for offset in range(count):
        key = limits.slot_key((start + offset) % count)
        if await store.claim(key, holder, limits.lease) is None:
            return key
    return None


async def renew_slot(store: ClaimStore, key: str, holder: str, lease: float) -> bool:
    """Push the slot's lease to `lease` seconds from now; False when `holder` lost it (its
    lease passed and another run took it)."""
    return await store.claim(key, holder, lease, replace=holder) is None


def reserve_ahead(rate: Rate) -> float:
    """How far ahead a run may reserve its start: four intervals, and at least 0.2 s, so a
    start is rarely lost for want of a run asking in time (waiting runs come back at random
    moments), at most `MAX_RESERVE_AHEAD` (a run sleeping for its start holds a worker slot,
    so at most about four sleep across the fleet)."""
    return min(max(4 * rate.interval, 0.2), MAX_RESERVE_AHEAD)


@dataclass(slots=True)
class RateGuesses:
    """A worker's knowledge of its rate keys: the last TAT it saw per key (the guess that
    makes a start cost one round trip instead of two), and a lock per key so that its own
    runs reserve one after the other instead of racing each other on the broker (where
    every lost race is one more round trip)."""

    values: dict[str, str] = field(default_factory=dict)
    locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    """Per key: its lock and how many runs use it (dropped at 0: keyed limits, one key per
    customer say, must not grow it for ever)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of asking for a start.

    Attributes:
        wait: Seconds until the reserved start (taken), or until one could be reserved
            (not taken).
        taken: Whether a start was reserved.
    """

    wait: float
    taken: bool


def _tat(value: str | None, now: float, rate: Rate) -> float:
    """The TAT a holder string says, or `now` when none or absurd.

    The value is in the broker, so anything may be there: unparsable, NaN, or far beyond
    any moment a correct worker writes (a clock years ahead). Such a value is replaced.
    """
    if value is None:
        return now
    try:
        tat = float(value)
    except ValueError:
        return now
    if not math.isfinite(tat) or tat > now + reserve_ahead(rate) + rate.per:
        return now
    return tat


async def reserve_start(
    store: ClaimStore, key: str, rate: Rate, guesses: RateGuesses
) -> Reservation:
    """Reserve a start under `key` within `reserve_ahead(rate)` seconds."""
    lock, users = guesses.locks.get(key) or (asyncio.Lock(), 0)
    guesses.locks[key] = (lock, users + 1)
    try:
        async with lock:
            return await _reserve(store, key, rate, guesses)
    finally:
        lock, users = guesses.locks[key]
        if users == 1:
            del guesses.locks[key]
        else:
            guesses.locks[key] = (lock, users - 1)


async def _reserve(store: ClaimStore, key: str, rate: Rate, guesses: RateGuesses) -> Reservation:
    interval, ahead = rate.interval, reserve_ahead(rate)
    seen = guesses.values.get(key)
    for _ in range(CAS_TRIES):
        now = time.time()
        start = max(_tat(seen, now, rate), now)
        if start - now > ahead:
            guesses.values[key] = seen or ""
            return Reservation(start - now - ahead, taken=False)
        tat = start + interval
        # The key outlives the TAT by a second: once it is gone, "no key" and "a TAT in the
        # past" mean the same, so a stale guess replacing a missing key is still right.
        ttl = tat - now + 1.0
        value = f"{tat:.6f}"
        current = await store.claim(key, value, ttl, replace=seen or None)
        if current is None:
            guesses.values[key] = value
            return Reservation(start - now, taken=True)
        seen = current
    guesses.values.pop(key, None)
    return Reservation(0.0, taken=False)  # lost every race: busy, try again later


__all__ = [
    "MAX_RESERVE_AHEAD",
    "RateGuesses",
    "Reservation",
    "new_holder",
    "renew_slot",
    "reserve_ahead",
    "reserve_start",
    "take_slot",
]
