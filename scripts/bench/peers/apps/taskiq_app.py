"""Taskiq with taskiq-redis's RedisStreamBroker (acknowledged deliveries).

Worker: ``taskiq worker taskiq_app:broker --workers 1 --max-async-tasks 10``. ``fill N``
queues N `counted` tasks for the scaling run (untimed, many sends in flight at once).
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


@broker.task(task_name="counted")
async def counted():
    common.count()


async def main(mode, n):
    await broker.startup()
    if mode == "fill":
        await common.fill_async(lambda: counted.kiq(), n)
    elif mode == "enqueue":
        await common.enqueue_async(lambda: noop.kiq(), n)
    else:
        await common.latency_async(lambda sent: probe.kiq(sent), n)
    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
