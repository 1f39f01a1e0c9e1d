"""A worker process for the crash tests: ``python crash_worker.py QUEUE CONCURRENCY``.

Builds `asynctasq.worker.Worker` on a `RedisDriver` (URL and prefix from the same
environment variables as `crash_tasks`) and runs it until killed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import crash_tasks

from asynctasq.worker import Worker
from asynctasq_redis import RedisDriver


def main() -> None:
    queue, concurrency = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(message)s")
    worker = Worker(
        driver=RedisDriver(
            url=crash_tasks.URL, prefix=crash_tasks.PREFIX, client_name=f"crash-{os.getpid()}"
        ),
        queues=[queue],
        concurrency=concurrency,
        allowed_roots=[str(Path(__file__).resolve().parent)],
        poll_wait=1.0,
    )
    asyncio.run(worker.run())


if __name__ == "__main__":
    main()
