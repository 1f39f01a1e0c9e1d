"""A producer or consumer process for the multi-process contention test.

    python contention_proc.py produce PATH QUEUE NAME COUNT
    python contention_proc.py consume PATH QUEUE STOP_FILE OUT_FILE

Producers mix single enqueues and batches; consumers lease random-sized batches, ack them and
write each delivered task id on its own line to OUT_FILE. A consumer creates OUT_FILE.ready
once its first dequeue has returned (it is connected and taking work), and stops once
STOP_FILE exists and a dequeue comes back empty.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_sqlite import SqliteDriver


async def produce(path: str, queue: str, name: str, count: int) -> None:
    driver = SqliteDriver(path=path)
    rng = random.Random(name)
    sent = 0
    while sent < count:
        size = min(rng.choice([1, 1, 1, 5, 20]), count - sent)
        batch = [
            OutgoingMessage(f"{name}-{i}", queue, b"{}", visibility_timeout=120.0)
            for i in range(sent, sent + size)
        ]
        if size == 1:
            await driver.enqueue(batch[0])
        else:
            await driver.enqueue_many(batch)
        sent += size
    await driver.close()


async def consume(path: str, queue: str, stop_file: str, out_file: str) -> None:
    driver = SqliteDriver(path=path)
    rng = random.Random(os.getpid())
    seen: list[str] = []
    stop = Path(stop_file)
    ready = Path(f"{out_file}.ready")
    while True:
        got = await driver.dequeue([queue], limit=rng.randint(1, 8), wait=0.2)
        if not ready.exists():  # noqa: ASYNC240  (once)
            ready.touch()  # noqa: ASYNC240
        if not got:
            if stop.exists():  # noqa: ASYNC240  (a stat between polls)
                break
            continue
        seen.extend(d.task_id for d in got)
        await driver.ack(got)
    await driver.close()
    Path(out_file).write_text("".join(f"{task_id}\n" for task_id in seen))  # noqa: ASYNC240


def main(argv: list[str]) -> None:
    role, *args = argv
    if role == "produce":
        path, queue, name, count = args
        asyncio.run(produce(path, queue, name, int(count)))
    elif role == "consume":
        asyncio.run(consume(*args))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
