"""Tasks for the tracing test across processes (the worker imports this module too)."""

from __future__ import annotations

from asynctasq.core.function import task

QUEUE = "otel"


@task(queue=QUEUE)
async def greet(name: str) -> str:
    return f"hello {name}"


@task(queue=QUEUE, max_attempts=2, retry_delay=0.1)
async def fails_twice() -> None:
    raise ValueError("always")
