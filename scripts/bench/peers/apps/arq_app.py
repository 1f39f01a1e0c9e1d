"""arq on Redis. Worker: ``arq arq_app.WorkerSettings`` (max_jobs 10, results not kept)."""

import asyncio
import sys

import common
from arq import create_pool
from arq.connections import RedisSettings


async def noop(ctx):
    common.tick()


async def probe(ctx, sent):
    common.record_latency(sent)


class WorkerSettings:
    functions = (noop, probe)
    redis_settings = RedisSettings.from_dsn(common.URL)
    queue_name = common.QUEUE
    max_jobs = 10
    keep_result = 0
    max_tries = 1


async def main(mode, n):
    pool = await create_pool(WorkerSettings.redis_settings, default_queue_name=common.QUEUE)
    if mode == "enqueue":
        await common.enqueue_async(lambda: pool.enqueue_job("noop"), n)
    else:
        await common.latency_async(lambda sent: pool.enqueue_job("probe", sent), n)
    await pool.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
