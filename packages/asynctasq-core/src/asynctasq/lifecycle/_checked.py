"""Reading stored lifecycle records field by field: anyone who can write to the broker can
write a record, so a field of the wrong type makes the record invalid (None), never an error
in a worker or a command that lists records."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


class Invalid(ValueError):
    """A stored field is not of its type."""


def text(doc: dict[str, Any], key: str) -> str:
    """A string field that must be there."""
    value = doc.get(key)
    if not isinstance(value, str):
        raise Invalid(key)
    return value


def maybe_text(doc: dict[str, Any], key: str) -> str | None:
    """A string field, or None when absent."""
    return None if doc.get(key) is None else text(doc, key)


def number(
    doc: dict[str, Any], key: str, *, low: float = -math.inf, high: float = math.inf
) -> float | None:
    """A finite number field within [low, high], or None when absent."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(key)
    if not (math.isfinite(value) and low <= value <= high):
        raise Invalid(key)
    return float(value)


def count(doc: dict[str, Any], key: str) -> int:
    """A whole number field, 0 or more (0 when absent)."""
    value = doc.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(key)
    return value


def moment(doc: dict[str, Any], key: str) -> datetime | None:
    """An epoch-seconds field as a UTC datetime, or None when absent."""
    value = number(doc, key, low=0, high=1e11)
    return None if value is None else datetime.fromtimestamp(value, UTC)
