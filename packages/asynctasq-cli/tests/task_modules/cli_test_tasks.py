"""Tasks for the CLI tests: imported by the tests and by `asynctasq worker --import`.

Every task takes `marker_dir` and leaves files there, so a test can see what ran even when
the worker is another process.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from asynctasq.core.function import task

running = 0
most_running = 0


def mark(marker_dir: str, name: str, text: str = "") -> None:
    """Append a line to `marker_dir/name`."""
    with open(Path(marker_dir) / name, "a") as f:
        f.write(text + "\n")


@task(queue="cli-a")
async def record(marker_dir: str, name: str) -> None:
    mark(marker_dir, name, "ran")


@task(queue="cli-a")
async def probe(marker_dir: str, seconds: float) -> None:
    """Counts how many run at once (in this process)."""
    global running, most_running
    running += 1
    most_running = max(most_running, running)
    try:
        await asyncio.sleep(seconds)
    finally:
        running -= 1
    mark(marker_dir, "probe", str(most_running))


@task(queue="cli-a", max_attempts=1)
async def sleepy(marker_dir: str, name: str, seconds: float) -> None:
    mark(marker_dir, f"{name}.started", str(os.getpid()))
    await asyncio.sleep(seconds)
    mark(marker_dir, f"{name}.done", str(os.getpid()))


@task(queue="cli-a")
def sync_thread(marker_dir: str, seconds: float) -> None:
    time.sleep(seconds)
    mark(marker_dir, "threads", threading.current_thread().name)


@task(queue="cli-a", process=True)
def in_process(marker_dir: str) -> None:
    mark(marker_dir, "pids", str(os.getpid()))


@task(queue="cli-a", max_attempts=1)
async def fail(marker_dir: str, message: str) -> None:
    mark(marker_dir, "fail", message)
    raise RuntimeError(message)


@task(queue="cli-a", max_attempts=1)
def sync_sleepy(marker_dir: str, name: str, seconds: float) -> None:
    mark(marker_dir, f"{name}.started", str(os.getpid()))
    time.sleep(seconds)
    mark(marker_dir, f"{name}.done", str(os.getpid()))
