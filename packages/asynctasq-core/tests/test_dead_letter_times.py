"""`DeadLetter.failed_at` is read from brokers anyone may write to: whatever a driver hands
over, a dead letter's time is aware, UTC, and converts to any time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from asynctasq.drivers.base import UNKNOWN_FAILED_AT, DeadLetter, Failure


def letter(failed_at: Any) -> DeadLetter:
    return DeadLetter("id", "q", b"", Failure("builtins.KeyError", "", ""), 1, failed_at)


def test_a_real_time_is_kept_in_utc() -> None:
    moment = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    kept = letter(moment).failed_at
    assert kept == moment and kept.tzinfo is UTC


def test_a_naive_time_is_read_as_utc() -> None:
    assert letter(datetime(2031, 5, 6)).failed_at == datetime(2031, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    "forged",
    [
        datetime.max,
        datetime.min,
        datetime(9999, 12, 31, 12, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1, 1, 1, 1, tzinfo=UTC),
        "2030-01-01",
        None,
        1.5e9,
    ],
)
def test_a_time_no_clock_can_show_is_unknown(forged: Any) -> None:
    failed_at = letter(forged).failed_at
    assert failed_at == UNKNOWN_FAILED_AT
    for hours in (-12, 0, 14):
        failed_at.astimezone(timezone(timedelta(hours=hours)))
