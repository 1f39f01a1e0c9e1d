"""A queue that knows whether its one reader is waiting on it: the test of the driver's
shortcuts around aiormq's queues (a frame or a delivery handed on at once only where the
task reading the queue would take it next)."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


class WatchedQueue(asyncio.Queue[T]):
    """`asyncio.Queue`, counting the readers waiting in `get`."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._waiting = 0

    @property
    def reader_waiting(self) -> bool:
        """Whether a reader is waiting in `get` (so, with nothing queued, it takes the next
        item as soon as it runs)."""
        return self._waiting > 0

    async def get(self) -> T:
        self._waiting += 1
        try:
            return await super().get()
        finally:
            self._waiting -= 1


__all__ = ["WatchedQueue"]
