"""Broker-side delays without plugins and without a polling mover: binary TTL levels.

A delay is rounded up to a whole number of `DELAY_UNIT_MS` units and written in binary. Level
``n`` has a topic exchange (shared by every work queue of one driver exchange) and, per work
queue, a classic queue whose messages all live exactly ``2**n`` units (`x-message-ttl`) before
RabbitMQ dead-letters them into the exchange of level ``n - 1`` (level 0 dead-letters into the
main exchange, straight to the work queue).

The routing key carries the bits, most significant first, and a queue id::

    0.0.0 ... 1.0.1.<queue id>        (DELAY_LEVELS bit words, then one id word)

At the exchange of level ``n`` a message whose bit ``n`` is 1 goes into the level-``n`` queue
of its work queue; a 0 passes it straight on (an exchange-to-exchange binding) to level
``n - 1``. A message is published at the exchange of its highest set bit, so a 1.5 s delay
(150 units = 128 + 16 + 4 + 2) waits in four queues and is never touched by a client until it
lands in its work queue. Every queue has one TTL, so the message at its head is always the next
to expire (per-message TTLs in one queue would block behind each other). The number of queues
is bounded (`DELAY_LEVELS` per work queue), so none of them needs `x-expires`, and a delay
survives any client restart: it lives in durable queues on the broker only.

This is the scheme NServiceBus uses on RabbitMQ, with a finer unit.
"""

from __future__ import annotations

import hashlib
import math

DELAY_UNIT_MS = 10
"""Resolution of a delay: delays are rounded up to a multiple of this many milliseconds."""

DELAY_LEVELS = 29
"""Number of binary levels. The top level's TTL, ``2**28 * 10`` ms (31 days), stays under the
``2**32 - 1`` ms RabbitMQ accepts for `x-message-ttl`."""

MAX_DELAY = (2**DELAY_LEVELS - 1) * DELAY_UNIT_MS / 1000.0
"""The longest delay in seconds (about 62 days)."""


def delay_units(delay: float) -> int:
    """Whole delay units for `delay` seconds, rounded up so a message is never early.

    Args:
        delay: Seconds; zero or less means no delay.

    Returns:
        The number of units, 0 for no delay.

    Raises:
        ValueError: When `delay` is not finite or exceeds `MAX_DELAY`.
    """
    if not math.isfinite(delay):
        raise ValueError(f"delay must be a finite number of seconds, got {delay!r}")
    if delay <= 0:
        return 0
    # Round to the microsecond first so 0.07 s does not become 8 units through float error.
    units = math.ceil(round(delay * 1000.0, 3) / DELAY_UNIT_MS)
    if units >= 2**DELAY_LEVELS:
        raise ValueError(
            f"delay {delay!r} s exceeds the longest RabbitMQ delay of {MAX_DELAY:.0f} s"
        )
    return units


def top_level(units: int) -> int:
    """The level of the highest set bit: the exchange a delayed message is published to."""
    return units.bit_length() - 1


def level_ttl_ms(level: int) -> int:
    """`x-message-ttl` of the queues of `level`."""
    return (1 << level) * DELAY_UNIT_MS


def queue_id(broker_queue: str) -> str:
    """A routing-key word naming a work queue: hex, so no dots or topic wildcards in it."""
    return hashlib.blake2b(broker_queue.encode(), digest_size=10).hexdigest()


def routing_key(units: int, qid: str) -> str:
    """The routing key of a message delayed by `units` for the queue with id `qid`."""
    bits = format(units, f"0{DELAY_LEVELS}b")
    return ".".join(bits) + "." + qid


def _pattern(level: int, bit: str, tail: str) -> str:
    words = ["*"] * DELAY_LEVELS
    words[DELAY_LEVELS - 1 - level] = bit
    return ".".join(words) + "." + tail


def level_queue_pattern(level: int, qid: str) -> str:
    """Binding of a work queue's level queue: bit `level` is 1, any other bits, this queue."""
    return _pattern(level, "1", qid)


def pass_through_pattern(level: int) -> str:
    """Exchange-to-exchange binding from `level` to `level - 1`: bit `level` is 0."""
    return ".".join(["*"] * (DELAY_LEVELS - 1 - level) + ["0", "#"])


def ready_pattern(qid: str) -> str:
    """Binding of a work queue to the level-0 exchange: bit 0 is 0, nothing left to wait."""
    return _pattern(0, "0", qid)


__all__ = [
    "DELAY_LEVELS",
    "DELAY_UNIT_MS",
    "MAX_DELAY",
    "delay_units",
    "level_queue_pattern",
    "level_ttl_ms",
    "pass_through_pattern",
    "queue_id",
    "ready_pattern",
    "routing_key",
    "top_level",
]
