"""Tracked tasks for the lifecycle commands' tests (status, tasks, cancel, workers, events).

Imported by the tests and by ``asynctasq worker --import cli_lifecycle_tasks``; each task
leaves marker files in `marker_dir`, so a test sees what ran in another process too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asynctasq import current_task
from asynctasq.core.function import task

QUEUE = "cli-lc"


def mark(marker_dir: str, name: str, text: str = "") -> None:
    with open(Path(marker_dir) / name, "a") as f:
        f.write(text + "\n")


@task(queue=QUEUE, track=True, max_attempts=1)
async def steps(marker_dir: str, name: str, count: int) -> None:
    """Reports progress `count` times, then finishes."""
    for i in range(count):
        await current_task().progress((i + 1) / count, f"step {i + 1}/{count}")
        await asyncio.sleep(0)
    mark(marker_dir, name, "done")


@task(queue=QUEUE, track=True, max_attempts=1)
async def slow(marker_dir: str, name: str, seconds: float) -> None:
    """Reports some progress, then runs for `seconds` (long enough to be seen running)."""
    await current_task().progress(0.25, "warming up")
    mark(marker_dir, f"{name}.started")
    await asyncio.sleep(seconds)
    mark(marker_dir, f"{name}.done")


@task(queue=QUEUE, track=True, max_attempts=1)
async def breaks(marker_dir: str, message: str) -> None:
    """Fails for good with `message`."""
    mark(marker_dir, "breaks")
    raise ValueError(message)


@task(queue="cli-lc-other", track=True, max_attempts=1)
async def elsewhere(marker_dir: str) -> None:
    mark(marker_dir, "elsewhere")
