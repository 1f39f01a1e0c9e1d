"""A worker process for the crash tests: ``python sqs_crash_worker.py QUEUE CONCURRENCY``.

Builds `asynctasq.worker.Worker` on an `SQSDriver` (endpoint, queue prefix and results
directory from the environment, as `sqs_crash_tasks`) and runs it until killed. When the
worker is about to take work it creates ``ready-<pid>`` in the results directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import sqs_crash_tasks

from asynctasq import Middleware
from asynctasq.worker import Worker


class Ready(Middleware):
    """Tells the test this worker is about to fetch work."""

    def before_worker_boot(self, worker: Worker) -> None:
        (sqs_crash_tasks.RESULTS / f"ready-{os.getpid()}").touch()


def main() -> None:
    queue, concurrency = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(message)s")
    worker = Worker(
        driver=sqs_crash_tasks.make_driver(),
        queues=[queue],
        concurrency=concurrency,
        allowed_roots=[str(Path(__file__).resolve().parent)],
        poll_wait=1.0,
        middleware=[Ready()],
    )
    asyncio.run(worker.run())


if __name__ == "__main__":
    main()
