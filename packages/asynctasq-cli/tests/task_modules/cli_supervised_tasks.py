"""Tasks for the ``asynctasq worker --workers N`` process tests.

Each run appends ``<pid>:<n>`` to ``started`` when it starts and to ``done`` when it ends, in
the marker directory the test passes, so the test sees which worker process ran what.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from asynctasq.core.function import task


def _append(marker_dir: str, name: str, n: int) -> None:
    # One short write with O_APPEND: lines from several processes never interleave.
    fd = os.open(Path(marker_dir) / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()}:{n}\n".encode())
    finally:
        os.close(fd)


@task(queue="sup", max_attempts=5, visibility_timeout=2)
async def work(marker_dir: str, n: int, seconds: float) -> None:
    _append(marker_dir, "started", n)
    await asyncio.sleep(seconds)
    _append(marker_dir, "done", n)


@task(queue="sup", max_attempts=5, visibility_timeout=10)
async def hold(marker_dir: str, n: int) -> None:
    """Runs until the test creates ``release`` in `marker_dir`: a kill of the process
    running it is certain to interrupt it, however slow the machine. Its lease outlives a
    late renewal on a loaded machine, and a killed run's lease is over in 10 s."""
    _append(marker_dir, "started", n)
    while not (Path(marker_dir) / "release").exists():
        await asyncio.sleep(0.02)
    _append(marker_dir, "done", n)


@task(queue="sup", max_attempts=5, visibility_timeout=30)
async def blocks_the_loop(marker_dir: str, n: int, seconds: float) -> None:
    """Blocks its worker's event loop for `seconds` (a sync call in async code), then waits
    far longer: signals that arrive meanwhile are handled together once the loop is back."""
    import time

    _append(marker_dir, "started", n)
    time.sleep(seconds)  # noqa: ASYNC251 - blocking the event loop is the point
    await asyncio.sleep(120)
    _append(marker_dir, "done", n)


@task(queue="sup", max_attempts=5, visibility_timeout=30)
async def will_not_stop(marker_dir: str, n: int) -> None:
    """Catches every cancellation: only the end of its process stops it."""
    _append(marker_dir, "started", n)
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            _append(marker_dir, "cancelled", n)


def _cpus_seen(marker_dir: str, mode: str, cpus: set[int]) -> None:
    # One file per process and mode: <mode>-<pid> holds the CPUs it may run on.
    # Written whole, then renamed: the test never reads a half-written file.
    path = Path(marker_dir) / f"{mode}-{os.getpid()}"
    temporary = path.with_name(f".{path.name}.{threading.get_ident()}")
    temporary.write_text(",".join(str(c) for c in sorted(cpus)))
    os.replace(temporary, path)


IMPORTED_ON = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
"""Where the worker could run while it imported this module (numerical libraries size
their thread pools from it at import)."""


@task(queue="sup", max_attempts=1)
async def cpus_in_loop(marker_dir: str) -> None:
    """Where the event loop's thread may run, and where its default executor's threads may."""
    _cpus_seen(marker_dir, "import", IMPORTED_ON)
    _cpus_seen(marker_dir, "loop", os.sched_getaffinity(0))
    to_thread = await asyncio.to_thread(os.sched_getaffinity, 0)
    _cpus_seen(marker_dir, "to_thread", to_thread)
    await asyncio.sleep(0.1)  # busy a while: the other worker takes the next ones


@task(queue="sup", max_attempts=1)
def cpus_in_thread(marker_dir: str) -> None:
    import time

    _cpus_seen(marker_dir, "thread", os.sched_getaffinity(0))
    time.sleep(0.1)


@task(queue="sup", max_attempts=1, process=True)
def cpus_in_process(marker_dir: str) -> None:
    _cpus_seen(marker_dir, "process", os.sched_getaffinity(0))
