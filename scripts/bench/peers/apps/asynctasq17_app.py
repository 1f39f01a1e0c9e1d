"""Upstream AsyncTasQ 1.7 (the release on the package index, Python >= 3.12) on Redis,
configured by its ASYNCTASQ_* variables.

``python asynctasq17_app.py fill N`` queues N `counted` tasks (untimed, many dispatches in
flight: 1.7 has no batch dispatch). Worker: its ``asynctasq worker --driver redis --queues Q
--concurrency 10``; 1.7 has no multi-process worker mode (its process pool runs CPU-bound
task bodies, not dequeues), so the scaling run starts N separate worker processes
(``spawn.py``).
"""

import sys

import common

from asynctasq import run, task


@task(queue=common.QUEUE, max_attempts=1)
async def counted() -> None:
    common.count()


async def fill(n: int) -> None:
    # The task must be the one of the importable module, not of __main__, so workers
    # resolve it by module name (PYTHONPATH holds this directory).
    import asynctasq17_app

    # 50 in flight: its Redis pool refuses more than 100 connections.
    await common.fill_async(lambda: asynctasq17_app.counted().dispatch(), n, window=50)


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode != "fill":
        raise SystemExit(f"asynctasq17_app: unknown mode {mode!r} (only fill)")
    run(fill(n))
