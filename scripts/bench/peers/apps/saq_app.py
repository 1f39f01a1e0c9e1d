"""SAQ on Redis. Worker: ``saq saq_app.settings`` (concurrency 10; the scaling run adds
``--workers N``). ``fill N`` queues N `counted` jobs (untimed, many sends in flight)."""

import asyncio
import sys

import common
from saq import Queue

queue = Queue.from_url(common.URL, name=common.QUEUE)


async def noop(ctx):
    common.tick()


async def probe(ctx, *, sent):
    common.record_latency(sent)


async def counted(ctx):
    common.count()


settings = {"queue": queue, "functions": [noop, probe, counted], "concurrency": 10}


async def main(mode, n):
    await queue.connect()
    if mode == "fill":
        await common.fill_async(lambda: queue.enqueue("counted"), n)
    elif mode == "enqueue":
        await common.enqueue_async(lambda: queue.enqueue("noop"), n)
    else:
        await common.latency_async(lambda sent: queue.enqueue("probe", sent=sent), n)
    await queue.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
