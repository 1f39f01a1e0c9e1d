"""What the worker keeps of a run for callers awaiting it (tasks with ``keep_result``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from asynctasq.core import results
from asynctasq.drivers.base import Driver, Failure, ResultStore
from asynctasq.serializer import SerializationError
from asynctasq.worker.job import Job

log = logging.getLogger("asynctasq.worker")

Settle = Callable[[str, Callable[[], Awaitable[None]]], Awaitable[bool]]


def value_outcome(job: Job, value: Any) -> bytes:
    """The outcome of a run that returned `value`; a value that cannot be serialized is
    kept as a failure naming it (the caller learns why, instead of waiting in vain)."""
    try:
        return results.encode_value(value, job.task_name)
    except SerializationError as exc:
        log.error("the result of task %s [%s] cannot be kept: %s", job.task_name, job.task_id, exc)
        return results.encode_failure(f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))


def failure_outcome(failure: Failure) -> bytes:
    """The outcome of a task that failed for good."""
    return results.encode_failure(failure.exception_type, failure.message)


async def keep(driver: Driver, job: Job, outcome: Callable[[], bytes], settle: Settle) -> None:
    """Store the outcome of `job` when its task asked to keep its result."""
    env = job.envelope
    if env is None or not env.keep_result:
        return
    if not results.keeps_results(driver):
        log.warning(
            "task %s [%s] asks to keep its result, but %s cannot keep results",
            job.task_name,
            job.task_id,
            type(driver).__name__,
        )
        return
    store = cast(ResultStore, driver)
    data, ttl = outcome(), env.keep_result
    await settle("keeping the result", lambda: store.store_result(job.task_id, data, ttl))
