"""Reading an event log on a server that cannot push (MySQL, SQLite across processes).

A waiting reader checks, then sleeps until an append it can see (one through the same
driver, or the same machine for SQLite) or a poll interval, doubling from `LOG_POLL_MIN` to
`LOG_POLL_MAX`: quick after a burst, cheap while idle. The drivers supply how to read and
how to be woken; the loop and the cursor format live here once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["ANY_SIZE", "LOG_POLL_MAX", "LOG_POLL_MIN", "WaitForAppend", "log_position", "poll_log"]

LOG_POLL_MIN = 0.02
"""First pause (seconds) of a waiting reader that was not woken."""
LOG_POLL_MAX = 0.25
"""Longest pause: how late a reader in another process may see an append at worst."""

T = TypeVar("T")

ANY_SIZE = 1 << 62
"""The largest entry a SQL read passes when the reader sets no `max_entry` (any size)."""

WaitForAppend = Callable[[float], Awaitable[None]]
"""Waits up to the given seconds for an append made after it was armed."""


def log_position(cursor: str | None, driver: str) -> int:
    """The entry id a cursor stands for (0 before the first).

    Raises:
        ValueError: `cursor` is not a cursor `driver` hands out.
    """
    if cursor is None:
        return 0
    try:
        return int(cursor)
    except ValueError:
        raise ValueError(f"not a log cursor of {driver}: {cursor!r}") from None


async def poll_log(
    read: Callable[[], Awaitable[list[T]]],
    arm: Callable[[], WaitForAppend],
    *,
    wait: float,
    still_open: Callable[[], bool],
) -> list[T]:
    """What `read` finds, waiting up to `wait` seconds for it to find something.

    `arm` is called before each read, so an append landing between the read and the sleep
    still wakes the reader. The wait ends early, empty, once `still_open` says the driver
    was closed.
    """
    deadline = time.monotonic() + max(wait, 0.0)
    pause = LOG_POLL_MIN
    found: list[T] = []
    while still_open():
        wait_for_append = arm()
        found = await read()
        remaining = deadline - time.monotonic()
        if found or remaining <= 0:
            break
        await wait_for_append(min(pause, remaining))
        pause = min(pause * 2, LOG_POLL_MAX)
    return found
