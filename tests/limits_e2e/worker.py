"""A worker process of the limits end-to-end tests: ``python worker.py <driver> <json>``.

Concurrency 10, the tasks of `limit_tasks`, SIGTERM to stop."""

from __future__ import annotations

import asyncio
import json
import sys

from limit_tasks import QUEUE

from asynctasq.config import set_global_config
from asynctasq.worker import Worker

if __name__ == "__main__":
    name, section = sys.argv[1], json.loads(sys.argv[2])
    set_global_config(driver=name, **{name: section})
    worker = Worker(queues=[QUEUE], concurrency=10, imports=["limit_tasks"], poll_wait=0.2)
    asyncio.run(worker.run())
