"""Tasks for the crash tests, imported by the test process and by `sqs_crash_worker.py`.

Each run appends ``<pid> <n>`` to ``started`` when it starts and to ``done`` when it
finishes, in the directory ``ASYNCTASQ_CRASH_DIR`` (one ``write`` to an ``O_APPEND`` file
each: whole lines, even from several processes), so the test can tell who ran what.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

from asynctasq import task
from asynctasq_sqs import SQSDriver

ENDPOINT = os.environ.get("ASYNCTASQ_TEST_SQS_ENDPOINT", "http://127.0.0.1:5000")
PREFIX = os.environ.get("ASYNCTASQ_CRASH_PREFIX", "crash-")
RESULTS = Path(os.environ.get("ASYNCTASQ_CRASH_DIR", "."))


def make_driver() -> SQSDriver:
    """The driver every process of one crash test uses (same queues)."""
    return SQSDriver(
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url=ENDPOINT,
        queue_name_prefix=PREFIX,
        create_queues=True,
    )


# Made at import time, as the guides do: nothing connects until the first dispatch.
driver = make_driver()


def note(kind: str, n: int) -> None:
    """Append one ``<pid> <n>`` line to the `kind` file."""
    fd = os.open(RESULTS / kind, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {n}\n".encode())
    finally:
        os.close(fd)


def entries(kind: str) -> list[tuple[int, int]]:
    """The (pid, n) lines of the `kind` file."""
    path = RESULTS / kind
    if not path.exists():
        return []
    return [(int(p), int(n)) for p, n in (line.split() for line in path.read_text().splitlines())]


@task(driver=driver, max_attempts=50, visibility_timeout=2)
async def record(n: int) -> None:
    """Note the start, take 50-200 ms (long enough for a kill to land mid-run), note the end."""
    note("started", n)
    await asyncio.sleep(random.uniform(0.05, 0.2))
    note("done", n)


@task(driver=driver, max_attempts=2, visibility_timeout=1)
async def kill_my_worker() -> None:
    """SIGKILL the worker process running this task, every time."""
    note("started", 0)
    os.kill(os.getpid(), signal.SIGKILL)
