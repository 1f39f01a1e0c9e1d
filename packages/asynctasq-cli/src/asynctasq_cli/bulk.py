"""Retrying or purging many dead letters in batches, with a progress bar on a terminal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from asynctasq.drivers.base import Driver

BATCH_SIZE = 500
"""Dead letters per driver call: big enough to be fast, small enough to show progress."""

BulkOperation = Callable[..., Awaitable[int]]
"""``driver.retry_dead_letters`` or ``driver.purge_dead_letters``."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters an operation applies to.

    Attributes:
        task_ids: These ids (within `queue` when given as well).
        queue: Only this queue.
        everything: Every dead letter of every queue.
    """

    task_ids: tuple[str, ...] = ()
    queue: str | None = None
    everything: bool = False

    def describe(self) -> str:
        """``in queue 'emails'``, ``in every queue`` or ``with the given ids``."""
        if self.task_ids:
            where = f" in queue {self.queue!r}" if self.queue else ""
            return f"with the given id(s){where}"
        return f"in queue {self.queue!r}" if self.queue else "in every queue"


async def count(driver: Driver, selection: Selection) -> tuple[int, list[str]]:
    """How many dead letters `selection` matches, and the requested ids that match none."""
    if selection.task_ids:
        found: set[str] = set()
        for start in range(0, len(selection.task_ids), BATCH_SIZE):
            chunk = selection.task_ids[start : start + BATCH_SIZE]
            letters = await driver.list_dead_letters(
                queue=selection.queue, task_ids=chunk, limit=len(chunk)
            )
            found.update(d.task_id for d in letters)
        return len(found), [t for t in selection.task_ids if t not in found]
    queues = [selection.queue] if selection.queue else await driver.queue_names()
    if not queues:
        return 0, []
    return sum(s.dead for s in await driver.stats(queues)), []


async def apply(
    driver: Driver,
    operation: BulkOperation,
    selection: Selection,
    total: int,
    advance: Callable[[int], None],
) -> int:
    """Run `operation` over the selected dead letters in batches of `BATCH_SIZE`.

    Args:
        driver: The connected driver.
        operation: The driver's ``retry_dead_letters`` or ``purge_dead_letters``.
        selection: What to apply it to.
        total: How many were counted; the loop stops there, so letters dead-lettered while
            it runs (a retried task failing again) are not taken twice.
        advance: Called with each batch's count (progress).

    Returns:
        How many dead letters the operation moved or deleted.
    """
    done = 0
    if selection.task_ids:
        ids = list(dict.fromkeys(selection.task_ids))
        for start in range(0, len(ids), BATCH_SIZE):
            n = await operation(queue=selection.queue, task_ids=ids[start : start + BATCH_SIZE])
            done += n
            advance(n)
        return done
    while done < total:
        page = await driver.list_dead_letters(
            queue=selection.queue, limit=min(BATCH_SIZE, total - done)
        )
        if not page:
            break
        n = await operation(queue=selection.queue, task_ids=[d.task_id for d in page])
        if n == 0:  # someone else took them meanwhile; nothing left to do here
            break
        done += n
        advance(n)
    return done


async def apply_with_progress(
    driver: Driver,
    operation: BulkOperation,
    selection: Selection,
    *,
    verb: str,
    console: Console,
) -> tuple[int, list[str]]:
    """Count, then apply `operation` with a progress bar (on a terminal only).

    Returns:
        How many were done, and the requested ids that matched no dead letter.
    """
    total, missing = await count(driver, selection)
    if total == 0:
        return 0, missing
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    ) as progress:
        task = progress.add_task(f"{verb} dead letters", total=total)
        done = await apply(driver, operation, selection, total, lambda n: progress.advance(task, n))
        progress.update(task, completed=done, total=max(total, done))
    return done, missing


__all__ = ["BATCH_SIZE", "BulkOperation", "Selection", "apply", "apply_with_progress", "count"]
