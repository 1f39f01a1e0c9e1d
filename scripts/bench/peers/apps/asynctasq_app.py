"""AsyncTasQ (this repository), any driver: configured by ASYNCTASQ_* variables.

Client: ``python asynctasq_app.py enqueue N`` / ``latency S``. Worker: the real
``asynctasq worker --import asynctasq_app --queues Q --concurrency 10``.
"""

import sys

import common

from asynctasq import run, task


@task(queue=common.QUEUE, max_attempts=1)
async def noop() -> None:
    common.tick()


@task(queue=common.QUEUE, max_attempts=1)
async def probe(sent: float) -> None:
    common.record_latency(sent)


async def main(mode: str, n: int) -> None:
    if mode == "enqueue":
        await common.enqueue_async(lambda: noop().dispatch(), n)
    else:
        await common.latency_async(lambda sent: probe(sent).dispatch(), n)


if __name__ == "__main__":
    run(main(sys.argv[1], int(sys.argv[2])))
