"""Moments as task settings, turned into what a message carries: seconds of delay for an
ETA (``.delay(when)``, ``.at(when)``) and epoch seconds for an expiry.

Moments are checked where they are set (`asynctasq.core.options.check_instant`): they are
timezone-aware, so every machine reads them alike.
"""

from __future__ import annotations

import math
from datetime import datetime


def seconds_until(moment: datetime, now: float) -> float:
    """Seconds from epoch time `now` to `moment`; 0 for a moment already past (it runs now).

    Rounded up to the millisecond: a broker that keeps times in milliseconds never makes a
    task due before `moment`.
    """
    left = moment.timestamp() - now
    return math.ceil(left * 1000) / 1000 if left > 0 else 0.0


def epoch(value: float | datetime, now: float) -> float:
    """`value` (seconds after `now`, or a moment) as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    return now + value


__all__ = ["epoch", "seconds_until"]
