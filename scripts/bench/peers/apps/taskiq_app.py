"""Taskiq with taskiq-redis's RedisStreamBroker (acknowledged deliveries).

Worker: ``taskiq worker taskiq_app:broker --workers 1 --max-async-tasks 10``.
"""

import asyncio
import sys

import common
from taskiq_redis import RedisStreamBroker

broker = RedisStreamBroker(url=common.URL, queue_name=common.QUEUE)


@broker.task(task_name="noop")
async def noop():
    common.tick()


@broker.task(task_name="probe")
async def probe(sent):
    common.record_latency(sent)


async def main(mode, n):
    await broker.startup()
    if mode == "enqueue":
        await common.enqueue_async(lambda: noop.kiq(), n)
    else:
        await common.latency_async(lambda sent: probe.kiq(sent), n)
    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
