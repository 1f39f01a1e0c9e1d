"""Tasks the workflow tests chain; each records its runs in `RUNS` (same process)."""

from __future__ import annotations

import asyncio
from typing import Any

from asynctasq import task
from asynctasq.core.task import Task

RUNS: list[tuple[str, Any]] = []
GATE: dict[str, asyncio.Event] = {}


@task(queue="wf")
async def add(a: int, b: int) -> int:
    RUNS.append(("add", (a, b)))
    return a + b


@task(queue="wf")
async def double(x: int) -> int:
    RUNS.append(("double", x))
    return 2 * x


@task(queue="wf")
def label(x: int, prefix: str = "") -> str:  # a sync step, run in a thread
    RUNS.append(("label", x))
    return f"{prefix}{x}"


@task(queue="wf")
async def pause(seconds: float, value: int) -> int:
    RUNS.append(("pause", value))
    await asyncio.sleep(seconds)
    return value


@task(queue="wf")
async def total(values: list[int]) -> int:
    RUNS.append(("total", list(values)))
    return sum(values)


@task(queue="wf", max_attempts=1)
async def boom(x: int) -> int:
    RUNS.append(("boom", x))
    raise ValueError(f"boom at {x}")


@task(queue="wf")
async def hold(x: int) -> int:
    """Runs until the test opens its gate (or it is cancelled)."""
    RUNS.append(("hold", x))
    gate = GATE.setdefault("hold", asyncio.Event())
    await gate.wait()
    return x


@task(queue="wf", unique=True)
async def only_once(x: int) -> int:
    return x


class Announce(Task[str]):
    queue = "wf"

    def __init__(self, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text

    async def handle(self) -> str:
        RUNS.append(("announce", self.text))
        return self.text
