"""Concurrency and rate limits: what a task declares, and what its messages carry.

A task declares ``concurrency_limit=N`` (at most N runs at once across all workers),
``rate_limit="100/m"`` (at most 100 starts in any minute, spread evenly), or both; with
``limit_key`` the limits hold per key (per customer, per API host) instead of per task;
``limit_lease`` bounds how long a crashed worker's concurrency slot stays taken.

Dispatch turns the declaration into the message's limits (`MessageLimits`, the envelope's
``"l"``): the claim key the limits live under, computed from the arguments like a unique
key (`asynctasq.core.limit_keys`), and the numbers. Workers enforce them through the
driver's `ClaimStore` (`asynctasq.core.limiter`, `asynctasq.worker.limits`).

This module only validates and parses; it imports nothing from the rest of core, so the
option checks (`asynctasq.core.options`) can use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

LIMIT_PREFIX = "limit:"
"""Every limit's claim key starts with it: a message can take no other claim."""
MAX_LIMIT_KEY = 480
"""Longest base key a message may carry: the slot suffixes (``:c999``, ``:r``) keep every
claim key within `asynctasq.drivers.claims.MAX_CLAIM_KEY_LENGTH`."""
MAX_CONCURRENCY_LIMIT = 1000
"""Largest ``concurrency_limit``: a full limit costs one claim attempt per slot (see the
flow-control guide), so a larger one is better expressed as a worker's concurrency."""
MAX_RATE_COUNT = 1_000_000
"""Largest count of a ``rate_limit``."""
MAX_RATE_PERIOD = 7 * 86400.0
"""Longest period of a ``rate_limit`` (a week)."""
DEFAULT_LIMIT_LEASE = 30.0
"""Seconds a concurrency slot stays taken after its worker died, when the task sets no
``limit_lease``. A live worker renews the slot every third of it while the task runs."""
MIN_LIMIT_LEASE = 1.0
"""Shortest ``limit_lease``: renewals every third of it must not flood the broker."""
MAX_LIMIT_LEASE = 86400.0
"""Longest ``limit_lease`` (a day)."""

LIMIT_OPTIONS = ("concurrency_limit", "rate_limit", "limit_key", "limit_lease")
"""The task settings this module checks."""

LimitKey = Callable[..., Any] | str
"""``limit_key``: a function of the task's arguments (function tasks) or of the task (class
tasks) returning a str or int, or the name of the argument or attribute holding the key."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"\s*(\d{1,7})\s*/\s*(\d{1,6}(?:\.\d{1,6})?)?\s*([smhd])\s*", re.ASCII)


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate limit: at most `count` starts per `per` seconds, one every `interval`."""

    count: int
    per: float

    @property
    def interval(self) -> float:
        """Seconds between two starts."""
        return self.per / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.per:g}s"


@dataclass(frozen=True, slots=True)
class Limits:
    """A task's declared limits (settings resolved at dispatch)."""

    concurrency: int | None
    rate: Rate | None
    key: LimitKey | None
    """None: one limit for the whole task."""
    lease: float


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """The limits a message carries (the envelope's ``"l"``).

    Attributes:
        key: The base claim key (``limit:<task>`` or ``limit:<task>:<key>``).
        concurrency: Most runs at once under this key; 0 when there is no such limit.
        rate: The rate limit under this key, if any.
        lease: Seconds a slot stays taken after its worker died.
    """

    key: str
    concurrency: int
    rate: Rate | None
    lease: float

    def slot_key(self, index: int) -> str:
        """The claim key of concurrency slot `index`."""
        return f"{self.key}:c{index}"

    @property
    def rate_key(self) -> str:
        """The claim key holding the rate limit's state."""
        return f"{self.key}:r"


def parse_rate(value: Any) -> Rate:
    """``"100/m"`` (also ``/s``, ``/h``, ``/d``, or ``"10/15m"``: 10 per 15 minutes).

    Raises:
        ValueError: `value` is not such a string, or a number in it is out of range.
    """
    if isinstance(value, Rate):
        return _check_rate(value.count, value.per, value)
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"rate_limit must look like '100/m' (a count, '/', an optional number and a unit "
            f"s, m, h or d, e.g. '5/s', '1000/h', '10/15m'), got {value!r}"
        )
    count, multiple, unit = match.groups()
    per = float(multiple or 1) * _UNITS[unit]
    return _check_rate(int(count), per, value)


def _check_rate(count: int, per: float, given: Any) -> Rate:
    if not 1 <= count <= MAX_RATE_COUNT:
        raise ValueError(f"rate_limit count must be 1 to {MAX_RATE_COUNT}, got {given!r}")
    if not (math.isfinite(per) and 1e-3 <= per <= MAX_RATE_PERIOD):
        raise ValueError(f"rate_limit period must be 1 ms to a week, got {given!r}")
    if per / count < 1e-6:
        raise ValueError(f"rate_limit {given!r} is faster than one start per microsecond")
    return Rate(count, per)


def check_concurrency_limit(value: Any) -> int:
    """``concurrency_limit``: a whole number of runs, 1 to `MAX_CONCURRENCY_LIMIT`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"concurrency_limit must be a whole number of runs, got {value!r}")
    if not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise ValueError(
            f"concurrency_limit must be 1 to {MAX_CONCURRENCY_LIMIT}, got {value!r} "
            "(to pause a task, stop dispatching it; to cap a worker, use its concurrency)"
        )
    return value


def check_limit_key(value: Any) -> LimitKey:
    """``limit_key``: a callable, or the name of an argument (or attribute)."""
    if callable(value):
        return value  # type: ignore[no-any-return]  # Callable[..., Any]
    if isinstance(value, str) and value.isidentifier():
        return value
    raise ValueError(
        "limit_key must be a function of the task's arguments or the name of one "
        f"argument, got {value!r}"
    )


def check_limit_lease(value: Any) -> float:
    """``limit_lease``: seconds, `MIN_LIMIT_LEASE` to `MAX_LIMIT_LEASE`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"limit_lease must be a number of seconds, got {value!r}")
    if not MIN_LIMIT_LEASE <= value <= MAX_LIMIT_LEASE:
        raise ValueError(
            f"limit_lease must be {MIN_LIMIT_LEASE:g} to {MAX_LIMIT_LEASE:g} seconds, got {value!r}"
        )
    return float(value)


def check_limit_option(name: str, value: Any) -> Any:
    """Validate one of `LIMIT_OPTIONS` by name."""
    if name == "concurrency_limit":
        return check_concurrency_limit(value)
    if name == "rate_limit":
        return parse_rate(value)
    if name == "limit_key":
        return check_limit_key(value)
    return check_limit_lease(value)


def check_limit_settings(options: Mapping[str, Any], where: str) -> None:
    """``limit_key`` and ``limit_lease`` mean nothing without a limit."""
    limited = options.get("concurrency_limit") is not None or options.get("rate_limit") is not None
    if limited:
        return
    for name in ("limit_key", "limit_lease"):
        if options.get(name) is not None:
            raise ValueError(f"{where}: {name} needs concurrency_limit or rate_limit")


def check_limit_argument(parameters: Mapping[str, Any], key: LimitKey, task: str) -> None:
    """A ``limit_key`` naming an argument must name one of `task`'s parameters."""
    if isinstance(key, str) and key not in parameters:
        names = ", ".join(parameters) or "none"
        raise ValueError(
            f"{task}: limit_key {key!r} is not one of its arguments ({names}); name an "
            "argument or pass a function of the arguments"
        )


def limits_of(options: Mapping[str, Any]) -> Limits | None:
    """The limits a task's checked settings declare, or None."""
    concurrency = options.get("concurrency_limit")
    rate = options.get("rate_limit")
    if concurrency is None and rate is None:
        return None
    lease = options.get("limit_lease") or DEFAULT_LIMIT_LEASE
    return Limits(concurrency, rate, options.get("limit_key"), lease)


# -- the envelope's "l" ------------------------------------------------------------------------
def to_wire(key: str, limits: Limits) -> dict[str, Any]:
    """The envelope's ``"l"`` for a message limited under claim key `key`."""
    wire: dict[str, Any] = {"k": key, "t": limits.lease}
    if limits.concurrency is not None:
        wire["c"] = limits.concurrency
    if limits.rate is not None:
        wire["r"] = [limits.rate.count, limits.rate.per]
    return wire


def _whole(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _seconds(value: Any, low: float, high: float) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def from_wire(value: Any) -> MessageLimits:
    """Check a message's ``"l"`` (hostile bytes) and return its limits.

    Every number is bounded: a message decides how many claims a worker tries and how
    often it renews them.

    Raises:
        ValueError: What is wrong, for the dead letter.
    """
    if not isinstance(value, dict) or not set(value) <= {"k", "c", "r", "t"}:
        raise ValueError("not an object of k, c, r and t")
    key = value.get("k")
    if not (
        isinstance(key, str)
        and key.startswith(LIMIT_PREFIX)
        and len(key) <= MAX_LIMIT_KEY
        and "\x00" not in key
    ):
        raise ValueError(f"the key is not a limit key of at most {MAX_LIMIT_KEY} characters")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the key is not valid UTF-8") from None
    concurrency = value.get("c", 0)
    if "c" in value and not _whole(concurrency, 1, MAX_CONCURRENCY_LIMIT):
        raise ValueError(f"the concurrency limit is not 1 to {MAX_CONCURRENCY_LIMIT}")
    rate = None
    if "r" in value:
        pair = value["r"]
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and _whole(pair[0], 1, MAX_RATE_COUNT)
            and _seconds(pair[1], 1e-3, MAX_RATE_PERIOD)
            and pair[1] / pair[0] >= 1e-6
        ):
            raise ValueError("the rate limit is not [count, seconds] within bounds")
        rate = Rate(pair[0], float(pair[1]))
    if not concurrency and rate is None:
        raise ValueError("neither a concurrency limit nor a rate limit")
    lease = value.get("t")
    if not _seconds(lease, MIN_LIMIT_LEASE, MAX_LIMIT_LEASE):
        raise ValueError("the lease is not a number of seconds within bounds")
    assert isinstance(lease, int | float)
    return MessageLimits(key, concurrency, rate, float(lease))


__all__ = [
    "DEFAULT_LIMIT_LEASE",
    "LIMIT_OPTIONS",
    "LIMIT_PREFIX",
    "MAX_CONCURRENCY_LIMIT",
    "LimitKey",
    "Limits",
    "MessageLimits",
    "Rate",
    "check_limit_argument",
    "check_limit_option",
    "check_limit_settings",
    "from_wire",
    "limits_of",
    "parse_rate",
    "to_wire",
]
