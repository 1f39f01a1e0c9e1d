"""Subprocess entry for the kill-a-worker test: ``python crash_worker.py enqueue N | work``.

Settings come from the environment: ``CRASH_DSN``, ``CRASH_QUEUE_TABLE``,
``CRASH_DEAD_LETTER_TABLE``, ``CRASH_QUEUE``, ``CRASH_RESULTS``, ``CRASH_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from asynctasq import dispatch_many, init
from asynctasq.drivers.connections import close_drivers
from asynctasq.worker import Worker
from asynctasq_mysql import MySQLDriver

HERE = Path(__file__).resolve().parent


def settings() -> dict[str, Any]:
    return {
        "dsn": os.environ["CRASH_DSN"],
        "queue_table": os.environ["CRASH_QUEUE_TABLE"],
        "dead_letter_table": os.environ["CRASH_DEAD_LETTER_TABLE"],
        "min_pool_size": 1,
        "max_pool_size": 4,
    }


async def enqueue(count: int) -> None:
    from crash_tasks import record

    try:
        await dispatch_many(record(n=i) for i in range(count))
    finally:
        await close_drivers()


async def work() -> None:
    worker = Worker(
        driver=MySQLDriver(**settings()),
        queues=[os.environ["CRASH_QUEUE"]],
        concurrency=int(os.environ.get("CRASH_CONCURRENCY", "5")),
        allowed_roots=[str(HERE)],
    )
    await worker.run()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(message)s")
    sys.path.insert(0, str(HERE))
    init({"driver": "mysql", "mysql": settings()})
    if sys.argv[1] == "enqueue":
        asyncio.run(enqueue(int(sys.argv[2])))
    else:
        asyncio.run(work())


if __name__ == "__main__":
    main()
