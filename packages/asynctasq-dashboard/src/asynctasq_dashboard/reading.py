"""What the pages show, read through the public APIs the CLI uses: `Driver` queue
operations, `asynctasq.lifecycle` (status, tasks, workers) and the `ResultStore`
capability. Every list is bounded (`bounds`); a capability the driver lacks reads as None,
so a page can say so instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from asynctasq.drivers.base import (
    DeadLetter,
    Driver,
    QueueStats,
    ResultStore,
    StatusStore,
    WorkerRegistry,
)
from asynctasq.lifecycle import TaskStatus, WorkerInfo, list_tasks, list_workers, status
from asynctasq_cli.commands.dead_letters import as_dict as dead_letter_dict
from asynctasq_dashboard import bounds


def busiest_first(stats: list[QueueStats]) -> list[QueueStats]:
    """Queues ordered by how much they hold, then by name."""
    return sorted(stats, key=lambda s: (-(s.ready + s.delayed + s.in_flight + s.dead), s.queue))


async def read_queues(driver: Driver) -> tuple[list[QueueStats], int]:
    """Depths of at most `bounds.QUEUES` queues (busiest first) and how many queues exist."""
    names = sorted(await driver.queue_names())
    stats = await driver.stats(names[: bounds.QUEUES]) if names else []
    return busiest_first(stats), len(names)


async def read_workers(driver: Driver) -> list[WorkerInfo] | None:
    """The live workers, or None when the driver keeps no worker registry."""
    if not isinstance(driver, WorkerRegistry):
        return None
    return await list_workers(driver=driver)


async def read_tasks(
    driver: Driver,
    *,
    queue: str | None = None,
    state: str | None = None,
    limit: int = bounds.ROWS,
) -> list[TaskStatus] | None:
    """Tracked tasks, most recently changed first, or None when the driver tracks none."""
    if not isinstance(driver, StatusStore):
        return None
    return await list_tasks(queue=queue, state=state, limit=min(limit, bounds.ROWS), driver=driver)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A kept result, as shown: ``ok`` with the value's JSON, or ``error`` with its text."""

    kind: str
    text: str


def outcome(raw: bytes) -> Outcome:
    """The stored outcome document shown as text; it is never decoded into objects (that
    could import classes or query a database on the dashboard's behalf)."""
    if len(raw) > bounds.RAW_JSON:
        return Outcome("ok", _raw_text(raw) + "…")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Outcome("unreadable", _raw_text(raw))
    if isinstance(doc, dict) and "error" in doc:
        return Outcome("error", pretty(doc["error"]))
    value = doc.get("ok") if isinstance(doc, dict) else doc
    return Outcome("ok", pretty(value))


def _raw_text(raw: bytes) -> str:
    """The start of stored bytes that are no JSON, as text with control characters shown
    as escapes (like every other field)."""
    return bounds.clip(
        raw[: bounds.ARGUMENTS].decode("utf-8", "replace"), bounds.ARGUMENTS, multiline=True
    )


def pretty(value: Any) -> str:
    """`value` as indented JSON, cut to `bounds.ARGUMENTS` characters."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        text = repr(value)
    return bounds.clip(text, bounds.ARGUMENTS, multiline=True)


@dataclass(frozen=True, slots=True)
class TaskView:
    """Everything known about one task id."""

    task_id: str
    status: TaskStatus | None
    tracking: bool
    dead_letter: dict[str, Any] | None
    result: Outcome | None
    keeps_results: bool

    @property
    def found(self) -> bool:
        """Whether anything at all is known of the id."""
        return self.status is not None or self.dead_letter is not None or self.result is not None

    @property
    def can_cancel(self) -> bool:
        """Whether a cancel button makes sense (a tracked task not finished yet)."""
        return self.status is not None and not self.status.finished


async def read_task(driver: Driver, task_id: str) -> TaskView:
    """Status, dead letter and kept result of `task_id`, each read through its own API."""
    tracking = isinstance(driver, StatusStore)
    found = await status(task_id, driver=driver) if tracking else None
    letter = await read_dead_letter(driver, task_id)
    result = None
    if isinstance(driver, ResultStore):
        raw = await driver.fetch_result(task_id, 0)
        result = None if raw is None else outcome(raw)
    return TaskView(task_id, found, tracking, letter, result, isinstance(driver, ResultStore))


def letter_view(letter: DeadLetter, *, full: bool) -> dict[str, Any]:
    """A dead letter as the CLI's JSON shows it, with arguments as bounded JSON text."""
    doc = dead_letter_dict(letter, full=full)
    if full:
        arguments = {k: doc.pop(k) for k in ("args", "kwargs", "attributes", "payload") if k in doc}
        doc["arguments"] = pretty(arguments)
    return doc


async def read_dead_letter(driver: Driver, task_id: str) -> dict[str, Any] | None:
    """One dead letter in full (arguments, traceback), or None."""
    found = await driver.list_dead_letters(task_ids=[task_id], limit=1)
    return letter_view(found[0], full=True) if found else None


async def read_dead_letters(driver: Driver, queue: str | None) -> list[dict[str, Any]]:
    """At most `bounds.ROWS` dead letters, oldest first."""
    found = await driver.list_dead_letters(queue=queue, limit=bounds.ROWS)
    return [letter_view(letter, full=False) for letter in found]


__all__ = [
    "Outcome",
    "TaskView",
    "busiest_first",
    "letter_view",
    "outcome",
    "pretty",
    "read_dead_letter",
    "read_dead_letters",
    "read_queues",
    "read_task",
    "read_tasks",
    "read_workers",
]
