"""Tasks for the crash tests, imported by the test process and by `rabbitmq_crash_worker.py`.

Each run appends ``<pid>:<n>`` to ``<path>.started`` when it starts and to ``<path>.done`` when
it finishes (O_APPEND writes of one short line are atomic), so the test can tell which worker
process ran what. Broker namespace from the environment, set by the test for isolation.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal

from asynctasq import task
from asynctasq_rabbitmq import RabbitMQDriver

URL = os.environ.get("ASYNCTASQ_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = os.environ.get("ASYNCTASQ_CRASH_EXCHANGE", "asynctasq-crash-test")
PREFIX = os.environ.get("ASYNCTASQ_CRASH_PREFIX", "crash-test.")


def make_driver() -> RabbitMQDriver:
    """A driver on the test's namespace."""
    return RabbitMQDriver(url=URL, exchange_name=EXCHANGE, queue_prefix=PREFIX)


# Made at import time, as the guides do: nothing connects until the first dispatch.
driver = make_driver()


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@task(driver=driver, max_attempts=50)
async def record(path: str, n: int) -> None:
    """Note the start, take a few milliseconds, note the finish."""
    me = f"{os.getpid()}:{n}\n"
    _append(path + ".started", me)
    await asyncio.sleep(random.uniform(0.005, 0.03))
    _append(path + ".done", me)


@task(driver=driver, max_attempts=2)
async def kill_my_worker(path: str) -> None:
    """SIGKILL the worker process running this task, every time."""
    _append(path + ".started", f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)
