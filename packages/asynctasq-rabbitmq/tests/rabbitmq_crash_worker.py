"""A worker process for the crash tests: ``python rabbitmq_crash_worker.py QUEUE CONCURRENCY``.

Builds `asynctasq.worker.Worker` on a `RabbitMQDriver` (namespace from the same environment
variables as `rabbitmq_crash_tasks`) and runs it until killed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import rabbitmq_crash_tasks

from asynctasq.worker import Worker


def main() -> None:
    queue, concurrency = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(message)s")
    worker = Worker(
        driver=rabbitmq_crash_tasks.make_driver(),
        queues=[queue],
        concurrency=concurrency,
        allowed_roots=[str(Path(__file__).resolve().parent)],
        poll_wait=1.0,
    )
    asyncio.run(worker.run())


if __name__ == "__main__":
    main()
