"""When a dead worker process is started again, and when the supervisor gives up."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Backoff between restarts of one worker slot, and what counts as a crash loop.

    A process that dies within `min_uptime` seconds of starting is a quick death. Each
    quick death in a row doubles the wait before the next start (from `backoff` up to
    `max_backoff`); `max_quick_deaths` in a row is a crash loop, and the supervisor stops
    everything instead of spinning. A process that lived longer starts the count again.

    Attributes:
        min_uptime: Seconds a process must live for its death not to count as quick.
        max_quick_deaths: Quick deaths in a row of one slot that make a crash loop.
        backoff: Seconds before the first restart.
        max_backoff: Longest wait between restarts.
    """

    min_uptime: float = 60.0
    max_quick_deaths: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        for name in ("min_uptime", "backoff", "max_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 seconds, got {value!r}")
        if not isinstance(self.max_quick_deaths, int) or self.max_quick_deaths < 1:
            raise ValueError(
                f"max_quick_deaths must be a whole number >= 1, got {self.max_quick_deaths!r}"
            )

    def is_quick(self, uptime: float) -> bool:
        """Whether a process that lived `uptime` seconds died quickly."""
        return uptime < self.min_uptime

    def is_crash_loop(self, quick_deaths: int) -> bool:
        """Whether `quick_deaths` in a row of one slot is a crash loop."""
        return quick_deaths >= self.max_quick_deaths

    def delay(self, quick_deaths: int) -> float:
        """Seconds to wait before starting a slot again after `quick_deaths` in a row."""
        return float(min(self.max_backoff, self.backoff * 2 ** max(0, quick_deaths - 1)))


__all__ = ["RestartPolicy"]
