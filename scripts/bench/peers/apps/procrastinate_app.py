"""Procrastinate on PostgreSQL. ``python procrastinate_app.py setup 0`` applies its schema;
``worker 0`` runs a worker (concurrency 10, LISTEN/NOTIFY, finished jobs deleted)."""

import asyncio
import sys

import common
import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=common.URL))


@app.task(queue=common.QUEUE)
async def noop():
    common.tick()


@app.task(queue=common.QUEUE)
async def probe(sent):
    common.record_latency(sent)


async def main(mode, n):
    async with app.open_async():
        if mode == "setup":
            await app.schema_manager.apply_schema_async()
        elif mode == "worker":
            await app.run_worker_async(
                queues=[common.QUEUE], concurrency=10, wait=True, delete_jobs="successful"
            )
        elif mode == "enqueue":
            await common.enqueue_async(lambda: noop.defer_async(), n)
        else:
            await common.latency_async(lambda sent: probe.defer_async(sent=sent), n)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
