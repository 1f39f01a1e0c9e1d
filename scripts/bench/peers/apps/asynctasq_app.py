"""AsyncTasQ (this repository), any driver: configured by ASYNCTASQ_* variables.

Client: ``python asynctasq_app.py enqueue N`` / ``latency S`` / ``fill N`` (the scaling
run: N `counted` tasks queued in batches, untimed). Worker: the real
``asynctasq worker --import asynctasq_app --queues Q --concurrency 10``.
"""

import sys

import common

from asynctasq import dispatch_many, run, task


@task(queue=common.QUEUE, max_attempts=1)
async def noop() -> None:
    common.tick()


@task(queue=common.QUEUE, max_attempts=1)
async def probe(sent: float) -> None:
    common.record_latency(sent)


@task(queue=common.QUEUE, max_attempts=1)
async def counted() -> None:
    common.count()


async def fill(n: int) -> None:
    for start in range(0, n, 5_000):
        await dispatch_many([counted() for _ in range(min(5_000, n - start))])


async def main(mode: str, n: int) -> None:
    if mode == "fill":
        await fill(n)
    elif mode == "enqueue":
        await common.enqueue_async(lambda: noop().dispatch(), n)
    else:
        await common.latency_async(lambda sent: probe(sent).dispatch(), n)


if __name__ == "__main__":
    run(main(sys.argv[1], int(sys.argv[2])))
