"""How many tasks of each queue expired: a counter per queue, kept in the driver's claims.

Why a claim: `ClaimStore` is the one capability every stateful driver has that offers an
atomic compare-and-replace (``claim(key, new, ttl, replace=old)``), so a counter needs no
new driver code, costs nothing until a task expires, and reading it is one call per queue.
Counting dead letters by failure type instead would mean listing them (a scan per queue on
every ``asynctasq queues``), and would miss the tasks dropped on expiry.

Workers add what expired in batches (`add_expired`); a count that cannot be written (broker
down, a flood of contending workers) is logged and lost: the count is a gauge for operators,
never used to decide anything. The counter of a queue is forgotten after a year without an
expiry.
"""

from __future__ import annotations

from collections.abc import Sequence

from asynctasq.drivers.base import ClaimStore
from asynctasq.drivers.claims import check_claim_key, held_count

PREFIX = "counter:expired:"
TTL = 366 * 86400.0
"""Seconds a queue's count is kept after its last change."""
_MAX_TRIES = 50


def key(queue: str) -> str:
    """The claim key holding `queue`'s count."""
    return PREFIX + queue


async def add_expired(store: ClaimStore, queue: str, count: int) -> bool:
    """Add `count` to `queue`'s expired counter (compare and replace, retried on
    contention); False when it never went through."""
    name = key(queue)
    current = await store.read_claim(name)
    for _ in range(_MAX_TRIES):
        holder = await store.claim(name, str(held_count(current) + count), TTL, replace=current)
        if holder is None:
            return True
        current = holder  # someone else added first: add to what they wrote
    return False


async def read_expired(store: ClaimStore, queues: Sequence[str]) -> list[int]:
    """The expired count of each of `queues`, in order. A name no dispatch accepts (too long
    for a claim key: written to the broker's registry behind the driver's back) has none."""
    counts = []
    for queue in queues:
        try:
            name = check_claim_key(key(queue))
        except ValueError:
            counts.append(0)
        else:
            counts.append(held_count(await store.read_claim(name)))
    return counts


__all__ = ["PREFIX", "TTL", "add_expired", "key", "read_expired"]
