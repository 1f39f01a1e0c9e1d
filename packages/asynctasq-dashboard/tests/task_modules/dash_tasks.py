"""Tasks the browser tests' worker runs (imported by the worker through --import)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from asynctasq.core.function import task
from asynctasq.lifecycle import current_task

QUEUE = "dash"


@task(queue=QUEUE, track=True, keep_result=True)
async def quick(n: int) -> int:
    await asyncio.sleep(0.05)
    return n * 2


@task(queue=QUEUE, track=True)
async def slow(seconds: float) -> None:
    for step in range(int(seconds * 10)):
        if step % 10 == 0:
            await current_task().progress(step / (seconds * 10), f"step {step}")
        await asyncio.sleep(0.1)


@task(queue=QUEUE, track=True, max_attempts=1)
async def needs_flag(flag: str) -> str:
    """Fails until the file `flag` exists (then a retried dead letter succeeds)."""
    if not await asyncio.to_thread(Path(flag).exists):
        raise RuntimeError(f"the flag file {flag} is missing")
    return "flag found"
