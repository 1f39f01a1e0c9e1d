"""When a schedule fires: `cron(...)` and `every(...)`, as ticks in whole Unix seconds.

A tick is an instant, written as whole seconds since the Unix epoch: the same number on
every machine, whatever its time zone, so replicas agree on which tick they claim.

Cron expressions are evaluated by `cronsim` (small, typed, pure Python, and its DST rules are
Debian cron's) in the schedule's time zone (`zoneinfo`; UTC by default). On DST days:

* a job at a fixed time (both minute and hour fields are numbers or lists, e.g.
  ``30 2 * * *``) runs once a day: a time skipped by the spring change runs at the first
  minute that exists after it (02:30 in Europe/Berlin runs at 03:00 that day), and a time
  that occurs twice in the autumn runs at its first occurrence only (summer time);
* a job whose minute or hour field starts with ``*`` (``*/15 * * * *``, ``0 * * * *``)
  follows the clock as it is: ticks in a skipped hour do not exist, ticks in a repeated hour
  run in both occurrences.

`every(...)` ticks are multiples of the interval since the epoch (``every(minutes=10)`` fires
at :00, :10, ... UTC): no time zone, no DST, and no dependence on when a worker started.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MAX_TICKS = 10_000
"""Most ticks one call of `When.ticks` computes (a bound on a catch-up's work)."""

_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# A result of cronsim that is not after the instant asked about (it evaluates fixed-time
# jobs on the naive local clock, so inside a repeated hour it can answer with the first
# occurrence) is skipped; this many in a row would be a bug, not a DST day.
_MAX_SKIPS = 64


class When(ABC):
    """A rule giving the instants (ticks) a schedule fires at."""

    @abstractmethod
    def next_after(self, moment: int) -> int | None:
        """The first tick strictly after `moment` (epoch seconds), or None if none comes."""

    def ticks(self, after: int, until: int, limit: int = MAX_TICKS) -> list[int]:
        """The ticks in ``(after, until]``, oldest first; the latest `limit` when more."""
        found: list[int] = []
        tick = self.next_after(after)
        while tick is not None and tick <= until:
            found.append(tick)
            if len(found) > limit:
                del found[0]
            tick = self.next_after(tick)
        return found

    @property
    def zone(self) -> tzinfo:
        """The time zone its ticks are shown in."""
        return UTC

    @abstractmethod
    def describe(self) -> str:
        """A short human description (``cron 0 7 * * mon-fri (Europe/Berlin)``)."""


class Cron(When):
    """Ticks from a 5-field cron expression in a time zone. Build it with `cron`."""

    __slots__ = ("_expr", "_zone")

    def __init__(self, expr: str, zone: ZoneInfo) -> None:
        self._expr = expr
        self._zone = zone

    @property
    def expression(self) -> str:
        """The cron expression (aliases such as ``@daily`` expanded)."""
        return self._expr

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def next_after(self, moment: int) -> int | None:
        it = CronSim(self._expr, datetime.fromtimestamp(moment, self._zone))
        for _ in range(_MAX_SKIPS):
            try:
                found = next(it)
            except StopIteration:  # cronsim gives up after 50 years without a match
                return None
            tick = int(found.timestamp())
            if tick > moment:
                return tick
        raise RuntimeError(f"cron {self._expr!r}: no tick after {moment} found (a bug)")

    def describe(self) -> str:
        return f"cron {self._expr} ({self._zone.key})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cron) and (self._expr, self._zone.key) == (
            other._expr,
            other._zone.key,
        )

    def __hash__(self) -> int:
        return hash((self._expr, self._zone.key))

    def __repr__(self) -> str:
        return f"cron({self._expr!r}, tz={self._zone.key!r})"


class Every(When):
    """Ticks every `seconds`, anchored to the Unix epoch. Build it with `every`."""

    __slots__ = ("_seconds",)

    def __init__(self, seconds: int) -> None:
        self._seconds = seconds

    @property
    def seconds(self) -> int:
        """The interval in seconds."""
        return self._seconds

    def next_after(self, moment: int) -> int:
        return (moment // self._seconds + 1) * self._seconds

    def ticks(self, after: int, until: int, limit: int = MAX_TICKS) -> list[int]:
        step = self._seconds
        last = until // step * step
        first = max(self.next_after(after), last - (limit - 1) * step)
        return list(range(first, last + 1, step))

    def describe(self) -> str:
        return f"every {_duration(self._seconds)}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Every) and self._seconds == other._seconds

    def __hash__(self) -> int:
        return hash(("every", self._seconds))

    def __repr__(self) -> str:
        return f"every(seconds={self._seconds})"


def _duration(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def cron(expr: str, tz: str | ZoneInfo | None = None) -> Cron:
    """Fire at the times a cron expression names, in time zone `tz` (default UTC).

    Five fields: minute, hour, day of month, month, day of week (``0 7 * * mon-fri``); names
    of months and days, ranges, lists, steps, ``L``, ``LW`` and ``#`` work as in cronsim,
    and ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly`` are accepted. See the
    module docstring for what happens on DST days.

    Args:
        expr: The cron expression.
        tz: An IANA time zone name (``"Europe/Berlin"``) or a `ZoneInfo`.

    Raises:
        ValueError: the expression is malformed (the message names the bad field), can
            never fire, or the time zone is unknown.
    """
    if not isinstance(expr, str):
        raise TypeError(f"cron() takes the expression as a string, got {expr!r}")
    zone = _zone(expr, tz)
    text = " ".join(expr.split())
    text = _ALIASES.get(text.lower(), text)
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"cron({expr!r}): expected 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len(parts)}; for seconds use every(seconds=...)"
        )
    try:
        CronSim(text, datetime.fromtimestamp(0, UTC))
    except CronSimError as exc:
        raise ValueError(f"cron({expr!r}): {_bad_field(exc, parts)}") from None
    when = Cron(text, zone)
    now = int(datetime.now(UTC).timestamp())
    if when.next_after(now) is None:
        raise ValueError(f"cron({expr!r}): the expression never fires")
    return when


def _bad_field(exc: CronSimError, parts: list[str]) -> str:
    """cronsim says ``Bad day-of-month``: name the field and quote what was written."""
    message = str(exc)
    for index, field in enumerate(_FIELDS):
        if message.lower() == f"bad {field}":
            if field == "day-of-month" and _parses([*parts[:3], "*", parts[4]]):
                # cronsim refuses a day no month given has (31 2): a valid field that
                # never fires, not a bad one.
                return (
                    f"the expression never fires: no month in {parts[3]!r} has a day "
                    f"in {parts[2]!r}"
                )
            return f"bad {field} field {parts[index]!r}"
    return message


def _parses(parts: list[str]) -> bool:
    try:
        CronSim(" ".join(parts), datetime.fromtimestamp(0, UTC))
    except CronSimError:
        return False
    return True


def _zone(expr: str, tz: str | ZoneInfo | None) -> ZoneInfo:
    if tz is None:
        return ZoneInfo("UTC")
    if isinstance(tz, ZoneInfo):
        return tz
    if not isinstance(tz, str) or not tz:
        raise TypeError(f"cron({expr!r}, tz=...): a time zone name or ZoneInfo, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"cron({expr!r}, tz={tz!r}): unknown time zone; use an IANA name such as "
            "'Europe/Berlin' or 'UTC'"
        ) from None


_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))


def every(
    *,
    seconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    days: float = 0,
) -> Every:
    """Fire every so often, at multiples of the interval since the Unix epoch.

    ``every(minutes=10)`` fires at :00, :10, :20, ... (UTC) on every worker alike;
    ``every(days=1)`` at midnight UTC (use `cron` for a local time of day).

    Raises:
        ValueError: the interval is not a whole number of seconds of at least 1.
    """
    given = {"days": days, "hours": hours, "minutes": minutes, "seconds": seconds}
    total = 0.0
    for name, size in _UNITS:
        value = given[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"every({name}=...) must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"every({name}=...) must be a finite number >= 0, got {value!r}")
        total += value * size
    if total < 1:
        raise ValueError("every(...) needs an interval of at least 1 second, e.g. every(minutes=5)")
    whole = round(total)
    if abs(total - whole) > 1e-6:
        raise ValueError(f"every(...) needs a whole number of seconds, got {total:g} seconds")
    if whole > 10 * 366 * 86400:
        raise ValueError(f"every(...) is at most ten years, got {whole} seconds")
    return Every(whole)


__all__ = ["MAX_TICKS", "Cron", "Every", "When", "cron", "every"]
