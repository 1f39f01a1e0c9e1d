"""Worker and dispatcher processes for the cross-process wake-up tests.

    python bell_worker.py work DB [--no-bell]
    python bell_worker.py dispatch DB MARK

The worker polls as rarely as it can be made to: `poll_interval` 30 s, its first re-check
after 30 s too (``MIN_POLL_INTERVAL``), and one fetch waits 60 s, so a task it starts within
a few seconds of the dispatch was rung in, not found by polling. With ``--no-bell`` it polls
every 50 ms instead and the bell is off (the fallback). The task appends
``"started <mark> <pid>"`` to the file named by ``BELL_LOG``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from asynctasq import init, task
from asynctasq.worker import Worker
from asynctasq_sqlite import SqliteDriver, _bell
from asynctasq_sqlite import driver as driver_module

QUEUE = "bell"
RARE_POLL = 30.0


@task(queue=QUEUE, max_attempts=1)
async def started(mark: str) -> None:
    """Record that the task with `mark` started, and where."""
    fd = os.open(os.environ["BELL_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"started {mark} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


async def work(path: str, bell: bool) -> None:
    if bell:
        driver_module.MIN_POLL_INTERVAL = RARE_POLL
        driver = SqliteDriver(path=path, poll_interval=RARE_POLL)
    else:
        _bell.AVAILABLE = False
        driver = SqliteDriver(path=path, poll_interval=0.05)
    worker = Worker(driver=driver, queues=[QUEUE], concurrency=2, poll_wait=60.0)
    await worker.run()


async def dispatch(path: str, mark: str) -> None:
    init({"driver": "sqlite", "sqlite": {"path": path}})
    await started(mark).dispatch()


def main(argv: list[str]) -> None:
    role, path, *rest = argv
    if role == "work":
        asyncio.run(work(path, bell=rest != ["--no-bell"]))
    elif role == "dispatch":
        asyncio.run(dispatch(path, rest[0]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
