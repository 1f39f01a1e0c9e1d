"""Task settings: validation at the call site and resolution against the configured defaults."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from asynctasq.config import RetryStrategy, TaskDefaults
from asynctasq.core.limits import (
    LIMIT_OPTIONS,
    Limits,
    check_limit_option,
    check_limit_settings,
    limits_of,
)
from asynctasq.core.timing import seconds_until
from asynctasq.drivers.base import MAX_PRIORITY, MIN_PRIORITY, Driver

OPTION_NAMES = (
    "queue",
    "max_attempts",
    "retry_delay",
    "retry_strategy",
    "retry_max_delay",
    "retry_jitter",
    "timeout",
    "visibility_timeout",
    "delay",
    "keep_result",
    "track",
    "expires",
    "on_expiry",
    "unique",
    "unique_key",
    "unique_for",
    "priority",
    *LIMIT_OPTIONS,
)

MAX_ATTEMPTS = 100_000
"""Most runs a task may ask for (workers refuse messages asking for more)."""
MAX_SECONDS = 10 * 365 * 86400.0
"""Longest duration a setting may take (ten years): workers refuse messages with longer."""
MIN_VISIBILITY = 0.001
"""Shortest ``visibility_timeout``: one millisecond, the unit brokers keep leases in."""

DEFAULT_RESULT_TTL = 3600.0
"""Seconds a result is kept with ``keep_result=True``."""
DEFAULT_UNIQUE_FOR = 3600.0
"""Seconds a unique task's key stays claimed at most, counted from when the task is due,
when the task sets no ``unique_for``. A task that finishes releases it at once; this bound
only frees the key of a task whose worker died, or that waited in its queue this long."""

OnExpiry = Literal["dead_letter", "drop"]
"""What a worker does with a task taken after its expiry: keep it as a dead letter (with a
`TaskExpiredError`), or acknowledge it and drop it."""
ON_EXPIRY = ("dead_letter", "drop")
UniqueKey = Callable[..., Any] | str
"""``unique_key``: a function of the task's arguments (function tasks) or of the task
(class tasks), or the name of the argument or attribute whose value is the key."""

_NAIVE_FIX = "attach a timezone, e.g. datetime.now(timezone.utc) + timedelta(minutes=5)"


def check_seconds(
    name: str, value: Any, *, allow_none: bool = False, positive: bool = False
) -> Any:
    """Validate a duration in seconds; raise ValueError naming the setting.

    NaN, infinities, negatives, booleans and non-numbers are refused before anything is queued.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    if value > MAX_SECONDS:
        raise ValueError(
            f"{name} must be at most {MAX_SECONDS:.0f} seconds (ten years), got {value!r}"
        )
    return value


def is_seconds(value: Any) -> bool:
    """Whether `value` is a duration `check_seconds` accepts: an int or a float (not a bool),
    0 to `MAX_SECONDS` (NaN and infinities fail every comparison). For data read back from
    a broker, where a bad value is reported, not raised."""
    kind = type(value)
    return (kind is int or kind is float) and 0 <= value <= MAX_SECONDS


def is_positive_seconds(value: Any) -> bool:
    """`is_seconds`, and more than 0: what ``check_seconds(..., positive=True)`` accepts."""
    kind = type(value)
    return (kind is int or kind is float) and 0 < value <= MAX_SECONDS


def check_instant(name: str, value: Any) -> datetime:
    """Validate a moment (an ETA or an expiry): a timezone-aware `datetime` at most ten years
    from now. One in the past is fine (a task due in the past runs at once)."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    if value.utcoffset() is None:
        raise ValueError(f"{name} got a naive datetime ({value.isoformat()}); {_NAIVE_FIX}")
    if value.timestamp() - time.time() > MAX_SECONDS:
        raise ValueError(f"{name} must be at most ten years from now, got {value.isoformat()}")
    return value


def check_seconds_or_instant(name: str, value: Any, *, positive: bool = False) -> Any:
    """A duration in seconds (a number or a `timedelta`) or an aware `datetime`."""
    if isinstance(value, datetime):
        return check_instant(name, value)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return check_seconds(name, value, positive=positive)


def check_on_expiry(value: Any) -> OnExpiry:
    """``on_expiry``: ``"dead_letter"`` (the default) or ``"drop"``."""
    if value not in ON_EXPIRY or not isinstance(value, str):
        raise ValueError(f"on_expiry must be 'dead_letter' or 'drop', got {value!r}")
    return value  # type: ignore[return-value]  # one of ON_EXPIRY, checked above


def check_unique_key(value: Any) -> UniqueKey:
    """``unique_key``: a callable, or the name of an argument (or attribute)."""
    if callable(value):
        return value  # type: ignore[no-any-return]  # Callable[..., Any]
    if isinstance(value, str) and value.isidentifier():
        return value
    raise ValueError(
        "unique_key must be a function of the task's arguments or the name of one "
        f"argument, got {value!r}"
    )


def check_unique_argument(signature: inspect.Signature, key: UniqueKey, task: str) -> None:
    """A `unique_key` naming an argument must name one of `task`'s parameters."""
    if isinstance(key, str) and key not in signature.parameters:
        names = ", ".join(signature.parameters) or "none"
        raise ValueError(
            f"{task}: unique_key {key!r} is not one of its arguments ({names}); name an "
            "argument or pass a function of the arguments"
        )


def check_settings(options: dict[str, Any], where: str) -> None:
    """Settings that only make sense together."""
    if options.get("unique_for") is not None and not (
        options.get("unique") or options.get("unique_key") is not None
    ):
        raise ValueError(f"{where}: unique_for needs unique=True or a unique_key")
    if options.get("on_expiry") is not None and options.get("expires") is None:
        raise ValueError(f"{where}: on_expiry needs expires (seconds or a datetime)")
    check_limit_settings(options, where)
    check_retry_settings(options, where)


RETRY_STRATEGIES = ("fixed", "exponential")


def check_retry_strategy(value: Any) -> RetryStrategy:
    """``retry_strategy``: ``"fixed"`` (the same wait every time) or ``"exponential"``."""
    if not isinstance(value, str) or value not in RETRY_STRATEGIES:
        raise ValueError(f"retry_strategy must be 'fixed' or 'exponential', got {value!r}")
    return value  # type: ignore[return-value]  # one of RETRY_STRATEGIES, checked above


def check_retry_settings(options: dict[str, Any], where: str) -> None:
    """Retry settings of one declaration (a decorator, a class, one ``.retry()`` call) that
    contradict each other.

    ``retry_max_delay`` and ``retry_jitter`` shape exponential backoff only; a declaration
    that asks for them with fixed waits (said, or implied by a ``retry_delay`` without a
    ``retry_strategy``) would have them silently ignored, so it is refused.
    """
    strategy = options.get("retry_strategy")
    delay = options.get("retry_delay")
    max_delay = options.get("retry_max_delay")
    shaping = [
        name
        for name, set_ in (
            ("retry_max_delay", max_delay is not None),
            ("retry_jitter=True", options.get("retry_jitter") is True),
        )
        if set_
    ]
    if shaping and strategy == "fixed":
        raise ValueError(
            f"{where}: {' and '.join(shaping)} shape exponential backoff only; with "
            "retry_strategy='fixed' every wait is retry_delay. Drop them, or use "
            "retry_strategy='exponential'"
        )
    if shaping and strategy is None and delay is not None:
        raise ValueError(
            f"{where}: a retry_delay without a retry_strategy means the same {delay} s wait "
            f"every time, so {' and '.join(shaping)} would do nothing; add "
            "retry_strategy='exponential' to back off from retry_delay"
        )
    if max_delay is not None and delay is not None and max_delay < delay:
        raise ValueError(
            f"{where}: retry_max_delay ({max_delay} s) is less than retry_delay ({delay} s), "
            "the first wait; raise retry_max_delay or lower retry_delay"
        )


def check_priority(value: Any) -> int:
    """``priority``: a whole number from ``MIN_PRIORITY`` (0, the default) to
    ``MAX_PRIORITY`` (9); higher runs first within its queue."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, got {value!r}"
        )
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(
            f"priority must be from {MIN_PRIORITY} (the default) to {MAX_PRIORITY} (runs "
            f"first), got {value!r}"
        )
    return int(value)


def check_attempts(name: str, value: Any) -> int:
    """Validate a total-runs count (0 and 1 both mean: run once, never retry)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if not (isinstance(value, float) and value.is_integer() and value >= 0):
            raise ValueError(f"{name} must be a whole number of runs (0 or more), got {value!r}")
        value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value!r}")
    if value > MAX_ATTEMPTS:
        raise ValueError(f"{name} must be at most {MAX_ATTEMPTS}, got {value!r}")
    return int(value)


def check_queue(value: Any, what: str = "queue") -> str:
    """Validate a queue name; return it unchanged.

    Wherever a queue name enters (a task setting, ``on_queue``, the configured defaults, a
    worker's queues, the command line), it goes through here, so every driver can rely on
    the same rule: at most 200 characters, no whitespace, no control or invisible characters.

    Args:
        value: The candidate name.
        what: How the error names the setting (``queue``, ``worker.queues``, ...).

    Raises:
        ValueError: `value` is not a usable queue name; the message says why.
    """
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(
            f"{what} must be a non-empty string of at most 200 characters, got {value!r}"
        )
    if value.isprintable() and " " not in value:  # every ordinary name: one check in C
        return value
    # Imported here only because this function is the module's only user of it.
    import unicodedata

    for position, char in enumerate(value):
        if char.isspace():
            raise ValueError(
                f"{what} name must not contain whitespace ({char!r} at position {position}), "
                f"got {value!r}"
            )
        # NUL and other control characters are refused by some brokers (PostgreSQL text)
        # and corrupt terminals and logs; format characters (bidi overrides, zero-width)
        # make two different names look the same; lone surrogates cannot be encoded.
        if unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            raise ValueError(
                f"{what} name must not contain control or invisible characters "
                f"({char!r}, U+{ord(char):04X}, at position {position}), got {value!r}"
            )
    return value


def check_keep_result(value: Any) -> float:
    """``keep_result``: True (keep for an hour), False, or seconds to keep it (0: don't)."""
    if value is True:
        return DEFAULT_RESULT_TTL
    if value is False or value is None:
        return 0.0
    return float(check_seconds("keep_result", value))


def check_track(value: Any) -> float:
    """``track``: True (keep the status for the configured time after the task ends), False,
    or seconds to keep it."""
    if value is True or value is False:
        return float(value)  # 1.0 stands for "the configured time": resolved at dispatch
    return float(check_seconds("track", value, positive=True))


def check_option(name: str, value: Any) -> Any:
    """Validate one task setting by name."""
    if name == "queue":
        return check_queue(value)
    if name == "max_attempts":
        return check_attempts(name, value)
    if name == "timeout":
        return check_seconds(name, value, allow_none=True, positive=True)
    if name == "visibility_timeout":
        value = check_seconds(name, value, positive=True)
        if value < MIN_VISIBILITY:  # brokers keep leases in milliseconds: 0 would be none
            raise ValueError(f"{name} must be at least {MIN_VISIBILITY} seconds, got {value!r}")
        return value
    if name == "delay":
        if type(value) is float or type(value) is int:  # the common case, checked at once
            return check_seconds(name, value)
        return check_seconds_or_instant(name, value)
    if name == "retry_delay" or name == "retry_max_delay":
        return check_seconds(name, value)
    if name == "retry_strategy":
        return check_retry_strategy(value)
    if name == "retry_jitter":
        if not isinstance(value, bool):
            raise ValueError(f"retry_jitter must be True or False, got {value!r}")
        return value
    if name == "keep_result":
        return check_keep_result(value)
    if name == "track":
        return value if isinstance(value, bool) else check_track(value)
    if name == "expires":
        return check_seconds_or_instant(name, value, positive=True)
    if name == "on_expiry":
        return check_on_expiry(value)
    if name == "unique":
        if not isinstance(value, bool):
            raise ValueError(f"unique must be True or False, got {value!r}")
        return value
    if name == "unique_key":
        return check_unique_key(value)
    if name == "unique_for":
        return check_seconds(name, value, positive=True)
    if name == "priority":
        return check_priority(value)
    if name in LIMIT_OPTIONS:
        return check_limit_option(name, value)
    raise TypeError(f"unknown task setting {name!r}; known: {', '.join(OPTION_NAMES)}")


def check_driver(value: Any) -> str | Driver | None:
    """A driver override is a name, a driver instance or None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Driver):
        return value
    raise TypeError(
        f"driver must be a driver name (e.g. 'redis') or a driver instance, got {value!r}"
    )


@dataclass(frozen=True, slots=True)
class Unique:
    """How a unique task finds its key, and how long the key stays claimed at most."""

    key: UniqueKey | None
    """None: a hash of all the arguments."""
    ttl: float


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """Every setting a dispatch needs, defaults filled in."""

    queue: str
    max_attempts: int
    retry_delay: float
    retry_strategy: RetryStrategy
    retry_max_delay: float
    retry_jitter: bool
    timeout: float | None
    visibility_timeout: float
    delay: float
    keep_result: float
    """Seconds to keep the result, 0 when it is not kept."""
    track: float
    """Seconds to keep the status record after the task ends, 0 when it is not tracked."""
    wire: dict[str, Any]
    """The settings the envelope carries, by their short names (its ``"o"``, see
    `asynctasq.core.envelope`): built once here, since most dispatches reuse them."""
    expires: float | datetime | None = None
    """Seconds after dispatch, or the moment, after which the task is not started."""
    drop_expired: bool = False
    """An expired task is acknowledged and dropped instead of dead-lettered."""
    unique: Unique | None = None
    limits: Limits | None = None
    """Concurrency and rate limits (`asynctasq.core.limits`), None when it has none."""
    priority: int = 0
    """Higher runs first within its queue (``MIN_PRIORITY``..``MAX_PRIORITY``)."""


def resolve(options: dict[str, Any], defaults: TaskDefaults) -> ResolvedOptions:
    """Fill the settings a task did not set from the configured defaults.

    Each retry setting is the task's own (a chain method over the decorator or class
    value, merged into `options` by the caller) or else the configured default, with one
    exception kept from the first releases: a task that sets its own ``retry_delay`` and
    no ``retry_strategy`` waits exactly that delay every time (the guides promise "retry
    with 30 second delays"), whatever the default strategy is.
    """
    own_delay = options.get("retry_delay")
    max_attempts = options.get("max_attempts", defaults.max_attempts)
    retry_delay = defaults.retry_delay if own_delay is None else own_delay
    strategy: RetryStrategy | None = options.get("retry_strategy")
    if strategy is None:
        strategy = defaults.retry_strategy if own_delay is None else "fixed"
    max_delay = options.get("retry_max_delay")
    if max_delay is None:
        max_delay = defaults.retry_max_delay
    # Jitter shapes exponential waits only; fixed ones carry False so a message says what
    # its worker does.
    jitter = options.get("retry_jitter")
    if jitter is None or strategy == "fixed":
        jitter = defaults.retry_jitter and strategy == "exponential"
    timeout = options["timeout"] if options.get("timeout") is not None else defaults.timeout
    visibility = options.get("visibility_timeout") or defaults.visibility_timeout
    keep_result = options.get("keep_result") or 0.0
    delay = options.get("delay") or 0.0
    if isinstance(delay, datetime):  # only ever a per-dispatch override
        delay = seconds_until(delay, time.time())
    unique = None
    if options.get("unique") or options.get("unique_key") is not None:
        unique = Unique(options.get("unique_key"), options.get("unique_for") or DEFAULT_UNIQUE_FOR)
    wire = {
        "ma": max_attempts,
        "rd": retry_delay,
        "rs": strategy,
        "rm": max_delay,
        "rj": jitter,
        "vt": visibility,
    }
    if timeout is not None:  # absent: no limit
        wire["to"] = timeout
    if keep_result:  # absent: not kept
        wire["kr"] = keep_result
    return ResolvedOptions(
        queue=options.get("queue") or defaults.queue,
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        retry_strategy=strategy,
        retry_max_delay=max_delay,
        retry_jitter=jitter,
        timeout=timeout,
        visibility_timeout=visibility,
        delay=delay,
        keep_result=keep_result,
        track=_track(options.get("track"), defaults),
        wire=wire,
        expires=options.get("expires"),
        drop_expired=options.get("on_expiry") == "drop",
        unique=unique,
        limits=limits_of(options),
        priority=options.get("priority") or 0,
    )


def _track(value: bool | float | None, defaults: TaskDefaults) -> float:
    if value is None:
        value = defaults.track
    if value is True:
        return defaults.track_ttl
    return float(value or 0.0)


def resolve_cached(owner: Any, options: dict[str, Any], defaults: TaskDefaults) -> ResolvedOptions:
    """`resolve` for a dispatch that overrides nothing, cached on `owner`.

    `owner` is the task class or task function whose own settings are `options`. Dispatch is
    a hot path and most dispatches override nothing, so their settings stay the same until
    the configuration changes (a new `TaskDefaults` object).
    """
    cached: tuple[TaskDefaults, ResolvedOptions] | None = vars(owner).get("_resolved")
    if cached is not None and cached[0] is defaults:
        return cached[1]
    resolved = resolve(options, defaults)
    # Kept in the owner's own namespace (read back through vars()): a subclass never reuses
    # its parent's entry.
    setattr(owner, "_resolved", (defaults, resolved))  # noqa: B010 - ClassVar-free cache slot
    return resolved
