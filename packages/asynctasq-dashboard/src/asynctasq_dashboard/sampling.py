"""The overview's numbers, read once per interval however many browsers watch.

Every page and live stream asks the `Sampler`; it reads the broker at most once per
`interval` and hands the same snapshot to everyone, so the work on the broker does not grow
with the number of viewers. Each read also adds a throughput sample: the tasks the workers
took per second since the previous read, from their ``processed`` counters (the same
arithmetic as ``asynctasq top``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from asynctasq.drivers.base import Driver, QueueStats
from asynctasq.lifecycle import WorkerInfo
from asynctasq_cli.commands.top import Throughput
from asynctasq_dashboard.reading import read_queues, read_workers

WINDOW = 300.0
"""Seconds of throughput history the chart shows."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One read of the queues and workers.

    Attributes:
        queues: Depths, busiest first (at most `bounds.QUEUES`).
        queue_count: How many queues the broker knows.
        workers: The live workers; None when the driver keeps no worker registry.
        rates: ``(monotonic time, tasks per second)`` samples of the last `WINDOW` seconds.
        read_at: When it was read (monotonic).
    """

    queues: list[QueueStats]
    queue_count: int
    workers: list[WorkerInfo] | None
    rates: list[tuple[float, float]]
    read_at: float


class Sampler:
    """Reads the overview at most once per `interval` seconds (see the module docs).

    Args:
        interval: Seconds a snapshot is reused.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._throughput = Throughput()
        self._rates: deque[tuple[float, float]] = deque()
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self, driver: Driver) -> Snapshot:
        """The current snapshot, read from `driver` when the last one is older than
        `interval`."""
        async with self._lock:
            now = time.monotonic()
            last = self._snapshot
            if last is not None and now - last.read_at < self.interval:
                return last
            queues, count = await read_queues(driver)
            workers = await read_workers(driver)
            at = time.monotonic()
            if workers is not None:
                rate = self._throughput.add(workers, at)
                if rate is not None:
                    self._rates.append((at, rate))
            while self._rates and self._rates[0][0] < at - WINDOW:
                self._rates.popleft()
            self._snapshot = Snapshot(queues, count, workers, list(self._rates), at)
            return self._snapshot


__all__ = ["WINDOW", "Sampler", "Snapshot"]
