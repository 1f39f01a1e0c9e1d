"""What the per-driver benchmarks share: loops on any driver, percentiles, the results table.

The loops take `open_driver`, a callable returning an async context manager that yields a
connected driver on fresh tables (each benchmark knows how to make one for its server).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asynctasq.drivers.base import OutgoingMessage

OpenDriver = Callable[[], AbstractAsyncContextManager[Any]]


NOTES_HEADING = "## Notes"
"""Where a benchmark page's hand-written analysis starts: a re-run keeps it."""


def kept_notes(page: Path) -> str:
    """The hand-written analysis of `page` (from `NOTES_HEADING` on, after a blank line),
    to append to the page a re-run writes; empty when it has none."""
    if not page.exists():
        return ""
    old = page.read_text()
    return "\n" + old[old.index(NOTES_HEADING) :] if NOTES_HEADING in old else ""


def lines_in(path: str | Path) -> int:
    """How many lines `path` holds (0 when it does not exist yet)."""
    try:
        with open(path, "rb") as file:
            return file.read().count(b"\n")
    except FileNotFoundError:
        return 0


async def wait_for_lines(
    path: str | Path, count: int, within: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Return once `path` holds `count` lines (a probe task started), polling every 0.5 ms.

    Polled from a thread with `time.sleep`, as a synchronous client polls: under uvloop,
    ``asyncio.sleep(0.0005)`` is a 0 ms timer, a busy loop that takes a whole core from the
    worker and the broker while the probe is on its way.

    Raises:
        RuntimeError: not within `within` seconds, or `alive` turned false.
    """

    def poll() -> None:
        deadline = time.monotonic() + within
        while lines_in(path) < count:
            if time.monotonic() > deadline or not alive():
                raise RuntimeError(f"no start reported within {within:g} s")
            time.sleep(0.0005)

    await asyncio.to_thread(poll)


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def repeat(times: int, run: Callable[[], Awaitable[float]]) -> list[float]:
    """`run()` `times` times, one after another."""
    return [await run() for _ in range(times)]


@dataclass
class Results:
    """The rows of a benchmark's table: median and every run's value."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, name: str, values: list[float], unit: str, fmt: str = "{:,.0f}") -> float:
        """Record (and print) a row; returns the median."""
        median = statistics.median(values)
        spread = ", ".join(fmt.format(v) for v in values)
        self.rows.append((name, f"{fmt.format(median)} {unit}", spread))
        print(f"  {name}: {fmt.format(median)} {unit}  [{spread}]", flush=True)
        return median


async def fill(driver: Any, messages: Sequence[OutgoingMessage]) -> None:
    """Enqueue `messages` in batches of 1,000."""
    for start in range(0, len(messages), 1000):
        await driver.enqueue_many(messages[start : start + 1000])


async def enqueue_single(open_driver: OpenDriver, messages: Sequence[OutgoingMessage]) -> float:
    """Messages per second, one `enqueue` call after another."""
    async with open_driver() as driver:
        started = time.perf_counter()
        for m in messages:
            await driver.enqueue(m)
        return len(messages) / (time.perf_counter() - started)


async def enqueue_batch(
    open_driver: OpenDriver, messages: Sequence[OutgoingMessage], batch: int
) -> float:
    """Messages per second with `enqueue_many` batches of `batch`."""
    async with open_driver() as driver:
        started = time.perf_counter()
        for start in range(0, len(messages), batch):
            await driver.enqueue_many(messages[start : start + batch])
        return len(messages) / (time.perf_counter() - started)


async def drain_driver_loop(
    open_driver: OpenDriver, queue: str, messages: Sequence[OutgoingMessage], concurrency: int
) -> float:
    """Tasks per second for a minimal consumer on the driver alone (no core worker):
    dequeue up to `concurrency`, run a no-op per message, ack the batch."""
    async with open_driver() as driver:
        await fill(driver, messages)
        done, n = 0, len(messages)
        started = time.perf_counter()
        while done < n:
            got = await driver.dequeue([queue], limit=concurrency, wait=1.0)
            await asyncio.gather(*(asyncio.sleep(0) for _ in got))
            await driver.ack(got)
            done += len(got)
        return n / (time.perf_counter() - started)
