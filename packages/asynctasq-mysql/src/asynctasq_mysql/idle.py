"""Idle polling: bounded exponential backoff, woken early by local enqueues."""

from __future__ import annotations

import asyncio


class IdleBackoff:
    """How long an idle consumer sleeps between polls.

    The interval starts at `min_interval`, doubles after each empty poll up to
    `max_interval`, and drops back to `min_interval` when work is found or when this process
    enqueues (`notify`), which also wakes every sleeper at once.

    Args:
        min_interval: First sleep after an empty poll, in seconds.
        max_interval: Cap on the sleep, in seconds.
    """

    def __init__(self, min_interval: float, max_interval: float) -> None:
        self.min_interval = min_interval
        self.max_interval = max(max_interval, min_interval)
        self._interval = min_interval
        self._wakeup: asyncio.Event | None = None

    @property
    def interval(self) -> float:
        """The sleep the next empty poll will take (before capping by deadlines)."""
        return self._interval

    def found_work(self) -> None:
        """Reset the backoff: the queue is busy."""
        self._interval = self.min_interval

    def notify(self) -> None:
        """A message was enqueued here: reset the backoff and wake every sleeper."""
        self._interval = self.min_interval
        event, self._wakeup = self._wakeup, None
        if event is not None:
            event.set()

    async def sleep(self, limit: float) -> bool:
        """Sleep for the current interval, at most `limit` seconds, or until `notify`.

        Args:
            limit: Upper bound in seconds (the caller's deadline or the next due row).

        Returns:
            True when `notify` ended the sleep (a message was just enqueued here).
        """
        delay = min(self._interval, limit)
        self._interval = min(self._interval * 2, self.max_interval)
        if delay <= 0:
            return False
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        event = self._wakeup
        try:
            async with asyncio.timeout(delay):
                await event.wait()
        except TimeoutError:
            return False
        return True


__all__ = ["IdleBackoff"]
