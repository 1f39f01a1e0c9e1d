"""Dispatcher and worker processes for the kill-a-worker crash test.

    python crash_worker.py dispatch DB COUNT
    python crash_worker.py work DB CONCURRENCY

Each task appends ``"start <n> <pid>"`` to the file named by the ``CRASH_LOG`` environment
variable, sleeps a little, then appends ``"done <n> <pid>"`` (one ``O_APPEND`` write per
line: lines never interleave).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from asynctasq import dispatch_many, init, task
from asynctasq.worker import Worker
from asynctasq_sqlite import SqliteDriver

QUEUE = "crash"


@task(queue=QUEUE, visibility_timeout=2.0, max_attempts=20, retry_delay=0.1)
async def record(n: int) -> None:
    """Pretend to work, recording the start and the completion the test checks."""
    note("start", n)
    await asyncio.sleep(random.uniform(0.02, 0.08))
    note("done", n)


def note(event: str, n: int) -> None:
    fd = os.open(os.environ["CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {n} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


async def dispatch(path: str, count: int) -> None:
    init({"driver": "sqlite", "sqlite": {"path": path}})
    await dispatch_many(record(n) for n in range(count))


async def work(path: str, concurrency: int) -> None:
    worker = Worker(driver=SqliteDriver(path=path), queues=[QUEUE], concurrency=concurrency)
    await worker.run()


def main(argv: list[str]) -> None:
    role, path, number = argv
    if role == "dispatch":
        asyncio.run(dispatch(path, int(number)))
    elif role == "work":
        asyncio.run(work(path, int(number)))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
