"""The polled log reader the SQL drivers share: armed before each read, doubling pauses,
an early end when the driver closes."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from asynctasq.drivers.sql.polled_logs import (
    LOG_POLL_MAX,
    LOG_POLL_MIN,
    WaitForAppend,
    log_position,
    poll_log,
)


def test_cursor_positions() -> None:
    assert log_position(None, "X") == 0
    assert log_position("41", "X") == 41
    with pytest.raises(ValueError, match="not a log cursor of XDriver: 'abc'"):
        log_position("abc", "XDriver")


async def test_found_at_once_reads_once_and_never_waits() -> None:
    calls: list[str] = []

    async def read() -> list[int]:
        calls.append("read")
        return [1, 2]

    def arm() -> WaitForAppend:
        calls.append("arm")

        async def wait(seconds: float) -> None:
            calls.append(f"wait {seconds}")

        return wait

    assert await poll_log(read, arm, wait=5, still_open=lambda: True) == [1, 2]
    assert calls == ["arm", "read"]


async def test_pauses_double_up_to_the_cap_and_are_cut_at_the_deadline() -> None:
    pauses: list[float] = []
    reads = 0

    async def read() -> list[int]:
        nonlocal reads
        reads += 1
        return [reads] if reads == 8 else []

    def arm() -> WaitForAppend:
        async def wait(seconds: float) -> None:
            pauses.append(seconds)  # returns at once: as if the append came

        return wait

    assert await poll_log(read, arm, wait=60, still_open=lambda: True) == [8]
    assert pauses[0] == LOG_POLL_MIN
    assert all(b == min(a * 2, LOG_POLL_MAX) for a, b in itertools.pairwise(pauses))
    assert pauses[-1] == LOG_POLL_MAX
    assert len(pauses) == 7  # armed before each read, waited after each empty one

    pauses.clear()
    reads = 100
    assert await poll_log(read, arm, wait=0.01, still_open=lambda: True) == []
    assert pauses and all(p <= 0.01 for p in pauses)  # never past the deadline


async def test_an_append_after_the_read_still_wakes_the_reader() -> None:
    appended = asyncio.Event()
    rows: list[int] = []

    async def read() -> list[int]:
        found = list(rows)
        rows.append(1)  # lands after this read, before the reader waits
        appended.set()
        return found

    def arm() -> WaitForAppend:
        event = appended
        event.clear()

        async def wait(seconds: float) -> None:
            await asyncio.wait_for(event.wait(), seconds)

        return wait

    assert await asyncio.wait_for(poll_log(read, arm, wait=30, still_open=lambda: True), 1) == [1]


async def test_stops_waiting_once_the_driver_is_closed() -> None:
    open_checks = iter([True, True, False])
    reads = 0

    async def read() -> list[int]:
        nonlocal reads
        reads += 1
        return []

    def arm() -> WaitForAppend:
        async def wait(seconds: float) -> None:
            return None

        return wait

    found = await asyncio.wait_for(
        poll_log(read, arm, wait=30, still_open=lambda: next(open_checks)), 1
    )
    assert (found, reads) == ([], 2)  # no read once closed, long before the 30 s
