"""Tick computation: cron in time zones (DST days included) and epoch-anchored intervals."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from asynctasq import cron, every
from asynctasq.schedules.when import Cron

BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int, zone: ZoneInfo = BERLIN, fold: int = 0) -> int:
    return int(datetime(*parts, tzinfo=zone, fold=fold).timestamp())  # type: ignore[misc]


def local(tick: int) -> str:
    return datetime.fromtimestamp(tick, BERLIN).strftime("%Y-%m-%d %H:%M %Z")


def ticks_between(when: Cron, start: int, end: int) -> list[str]:
    return [local(t) for t in when.ticks(start, end)]


def test_a_fixed_time_job_runs_once_on_the_spring_forward_day_at_3_00() -> None:
    job = cron("30 2 * * *", tz="Europe/Berlin")
    # 2026-03-29: clocks jump from 02:00 to 03:00 in Berlin; 02:30 does not exist.
    found = ticks_between(job, at(2026, 3, 28, 12, 0), at(2026, 3, 30, 12, 0))
    assert found == ["2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"]


def test_a_fixed_time_job_runs_once_on_the_fall_back_day_at_its_first_occurrence() -> None:
    job = cron("30 2 * * *", tz="Europe/Berlin")
    # 2026-10-25: 02:00-03:00 happens twice (CEST, then CET).
    found = ticks_between(job, at(2026, 10, 24, 12, 0), at(2026, 10, 26, 12, 0))
    assert found == ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]


def test_a_scheduler_starting_inside_the_repeated_hour_does_not_fire_the_day_twice() -> None:
    job = cron("30 2 * * *", tz="Europe/Berlin")
    # 02:10 CET (second pass through the hour): 02:30 CEST is already in the past.
    start = at(2026, 10, 25, 2, 10, fold=1)
    assert local(job.next_after(start) or 0) == "2026-10-26 02:30 CET"


def test_wildcard_jobs_follow_the_clock_through_dst_changes() -> None:
    job = cron("*/30 2 * * *", tz="Europe/Berlin")
    spring = ticks_between(job, at(2026, 3, 29, 0, 0), at(2026, 3, 29, 12, 0))
    assert spring == []  # the hour does not exist that day
    autumn = ticks_between(job, at(2026, 10, 25, 0, 0), at(2026, 10, 25, 12, 0))
    assert autumn == [
        "2026-10-25 02:00 CEST",
        "2026-10-25 02:30 CEST",
        "2026-10-25 02:00 CET",
        "2026-10-25 02:30 CET",
    ]


def test_cron_in_utc_by_default_and_weekday_names() -> None:
    job = cron("0 7 * * mon-fri")
    friday_evening = int(datetime(2026, 5, 1, 20, 0, tzinfo=UTC).timestamp())  # a Friday
    monday = datetime.fromtimestamp(job.next_after(friday_evening) or 0, UTC)
    assert (monday.weekday(), monday.hour, monday.minute) == (0, 7, 0)


def test_aliases() -> None:
    assert cron("@daily") == cron("0 0 * * *")
    assert cron("@hourly").expression == "0 * * * *"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "bad minute field '61'"),
        ("0 24 * * *", "bad hour field '24'"),
        ("0 0 32 * *", "bad day-of-month field '32'"),
        ("0 0 * 13 *", "bad month field '13'"),
        ("0 0 * * someday", "bad day-of-week field 'someday'"),
        ("0 0 * *", "expected 5 fields"),
        ("0 0 0 * * *", "expected 5 fields"),
        # A valid day no month given has: the field is fine, the expression never fires.
        ("0 0 31 2 *", "never fires: no month in '2' has a day in '31'"),
        ("0 0 31 2,4 *", "never fires: no month in '2,4' has a day in '31'"),
        ("0 0 32 2 *", "bad day-of-month field '32'"),
    ],
)
def test_a_bad_expression_names_the_field(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron(expr)


def test_a_bad_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        cron("0 0 * * *", tz="Europe/Atlantis")
    with pytest.raises(TypeError):
        cron(5)  # type: ignore[arg-type]


def test_every_is_anchored_to_the_epoch() -> None:
    ten = every(minutes=10)
    assert ten.seconds == 600
    assert ten.next_after(1_000_000_000) == 1_000_000_200  # next multiple of 600
    assert ten.next_after(1_000_000_200) == 1_000_000_800
    assert ten.ticks(599, 1800) == [600, 1200, 1800]
    assert every(hours=1, minutes=30).seconds == 5400
    assert every(days=1).describe() == "every 1d"
    assert ten.ticks(0, 6000, limit=2) == [5400, 6000]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"seconds": 0.5}, {"seconds": 1.5}, {"minutes": -1}, {"seconds": float("nan")}],
)
def test_every_refuses_unusable_intervals(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="every"):
        every(**kwargs)


def test_cron_ticks_keep_the_latest_when_limited() -> None:
    job = cron("* * * * *")
    assert job.ticks(0, 600, limit=3) == [480, 540, 600]
