"""The pages: for each, its template, the live regions it updates and how its data is read.

A page is rendered whole on GET; its live stream renders the same region templates with
fresh data (`live`). Query parameters carry queue names and task ids (any string is a valid
name), capped in length before they reach the broker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from asynctasq.drivers.base import ClaimStore
from asynctasq.lifecycle import TaskState
from asynctasq.schedules.claims import read_last
from asynctasq.schedules.registry import schedules
from asynctasq_dashboard import bounds
from asynctasq_dashboard.chart import draw
from asynctasq_dashboard.reading import (
    read_dead_letter,
    read_dead_letters,
    read_task,
    read_tasks,
)
from asynctasq_dashboard.sampling import WINDOW
from asynctasq_dashboard.state import dashboard_of

MAX_PARAM = bounds.PARAM
"""Longest queue name or task id accepted in a URL."""
NEXT_RUNS = 3
OVERVIEW_TASKS = 15
"""Recent tasks on the overview (the tasks page lists more)."""


def param(request: Request, name: str, *, required: bool = False) -> str | None:
    """Query parameter `name`, refused when longer than `MAX_PARAM`.

    Raises:
        HTTPException: 400 for a missing required parameter or an over-long one.
    """
    value = request.query_params.get(name)
    if value is None or value == "":
        if required:
            raise HTTPException(400, f"the {name!r} parameter is required")
        return None
    if len(value) > MAX_PARAM:
        raise HTTPException(400, f"the {name!r} parameter is over {MAX_PARAM} characters")
    return value


Loader = Callable[[Request], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Page:
    """A page: `template` rendered with what `load` returns; `regions` update live."""

    template: str
    regions: tuple[str, ...]
    load: Loader


async def overview(request: Request) -> dict[str, Any]:
    dashboard = dashboard_of(request)
    driver = await dashboard.connected()
    snap = await dashboard.sampler.snapshot(driver)
    return {
        "queues": snap.queues[: bounds.ROWS],
        "queue_count": snap.queue_count,
        "workers": snap.workers,
        "chart": draw(snap.rates, time.monotonic(), WINDOW),
        "tasks": await read_tasks(driver, limit=OVERVIEW_TASKS),
    }


async def queue(request: Request) -> dict[str, Any]:
    name = param(request, "name", required=True)
    assert name is not None
    driver = await dashboard_of(request).connected()
    (stats,) = await driver.stats([name])
    return {
        "name": name,
        "stats": stats,
        "tasks": await read_tasks(driver, queue=name),
        "letters": await read_dead_letters(driver, name),
    }


async def tasks(request: Request) -> dict[str, Any]:
    state = param(request, "state")
    if state is not None and state not in TaskState.__members__.values():
        raise HTTPException(400, f"unknown state; one of: {', '.join(TaskState)}")
    name = param(request, "queue")
    driver = await dashboard_of(request).connected()
    return {
        "state": state,
        "queue": name,
        "states": list(TaskState),
        "tasks": await read_tasks(driver, queue=name, state=state),
    }


async def task(request: Request) -> dict[str, Any]:
    task_id = param(request, "id")
    if task_id is None:
        return {"view": None}
    driver = await dashboard_of(request).connected()
    return {"view": await read_task(driver, task_id)}


async def dead_letters(request: Request) -> dict[str, Any]:
    name = param(request, "queue")
    driver = await dashboard_of(request).connected()
    return {"queue": name, "letters": await read_dead_letters(driver, name)}


async def dead_letter(request: Request) -> dict[str, Any]:
    task_id = param(request, "id", required=True)
    assert task_id is not None
    driver = await dashboard_of(request).connected()
    return {"task_id": task_id, "letter": await read_dead_letter(driver, task_id)}


async def workers(request: Request) -> dict[str, Any]:
    dashboard = dashboard_of(request)
    snap = await dashboard.sampler.snapshot(await dashboard.connected())
    return {"workers": snap.workers, "now": datetime.now().astimezone()}


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One declared schedule with its next runs and the last tick claimed."""

    name: str
    task_name: str
    when: str
    catch_up: bool
    next_runs: list[datetime]
    last: datetime | None


async def schedules_page(request: Request) -> dict[str, Any]:
    driver = await dashboard_of(request).connected()
    claims = driver if isinstance(driver, ClaimStore) else None
    rows = []
    # The schedules this process declares (its imported task modules): state is read for
    # those only, as `asynctasq schedules` does.
    for s in schedules():
        tick = None if claims is None else await read_last(claims, s.name)
        last = None if tick is None else datetime.fromtimestamp(tick, s.when.zone)
        rows.append(
            ScheduleRow(
                s.name, s.task_name, s.when.describe(), s.catch_up, s.next_runs(NEXT_RUNS), last
            )
        )
    return {"schedules": rows, "claims": claims is not None}


PAGES: dict[str, Page] = {
    "overview": Page("overview.html", ("chart", "queues", "workers", "tasks"), overview),
    "queue": Page("queue.html", ("queue_stats", "tasks", "letters"), queue),
    "tasks": Page("tasks.html", ("tasks",), tasks),
    "task": Page("task.html", ("task",), task),
    "dead_letters": Page("dead_letters.html", ("letters",), dead_letters),
    "dead_letter": Page("dead_letter.html", ("letter",), dead_letter),
    "workers": Page("workers.html", ("workers",), workers),
    "schedules": Page("schedules.html", ("schedules",), schedules_page),
}
"""Every page by its route name."""

__all__ = ["MAX_PARAM", "PAGES", "Page", "ScheduleRow", "param"]
