"""Putting tasks on queues: `dispatch` (one) and `dispatch_many` (one round-trip per driver)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from asynctasq.config import get_config
from asynctasq.core import envelope
from asynctasq.core.function import FunctionTask
from asynctasq.core.options import resolve, resolve_cached
from asynctasq.core.results import TaskId, cannot_keep, keeps_results
from asynctasq.core.task import BaseTask, handed_over
from asynctasq.drivers.base import Driver, OutgoingMessage, TransactionalEnqueue
from asynctasq.drivers.connections import get_driver
from asynctasq.lifecycle import dispatching
from asynctasq.middleware import before_enqueue, call_hooks, dispatch_middleware

T = TypeVar("T")


def new_task_id() -> str:
    """A random (version 4) UUID string, made without building a `uuid.UUID` object."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def prepare(task: BaseTask[Any]) -> OutgoingMessage:
    """Assign an id, resolve settings and encode: everything but the driver call."""
    if task._unsent is not None:
        handed_over(task)  # a dispatch was asked for: whatever happens now is reported
    defaults = get_config().task_defaults
    if task._overrides():
        options = resolve(task._settings(), defaults)
    else:
        owner = task.function if isinstance(task, FunctionTask) else type(task)
        options = resolve_cached(owner, task._class_options, defaults)
    task_id = new_task_id()
    now = time.time()
    payload = envelope.encode(task, task_id, options, now)
    task._tracked = options.track
    task._task_id = task_id
    task._dispatched_at = datetime.fromtimestamp(now, UTC)
    return OutgoingMessage(
        task_id=task_id,
        queue=options.queue,
        payload=payload,
        delay=options.delay,
        visibility_timeout=options.visibility_timeout,
    )


async def _enqueue_in_transaction(
    driver: Driver, connection: Any, messages: Sequence[OutgoingMessage]
) -> None:
    if not isinstance(driver, TransactionalEnqueue):
        raise TypeError(
            f"{type(driver).__name__} cannot queue inside a caller's transaction "
            "(dispatch(connection=...) needs the postgres or mysql driver)"
        )
    await driver.enqueue_with_connection(connection, messages)


async def dispatch(task: BaseTask[T], *, connection: Any = None) -> TaskId[T]:
    """Queue one task and return its id. See `BaseTask.dispatch`."""
    message = prepare(task)
    middleware = dispatch_middleware()
    if middleware:
        before_enqueue(middleware, task, message)  # may veto: nothing is queued yet
    driver = await get_driver(task._driver())
    if task._option("keep_result") and not keeps_results(driver):
        raise cannot_keep(driver, f"{_name(task)} has keep_result")  # before anything is queued
    tracked: list[dispatching.Tracked] = []
    if task._tracked:
        tracked.append((message, _name(task), task._tracked))
        dispatching.check_trackable(driver, _name(task))
        await dispatching.write_first(driver, tracked)
    try:
        if connection is not None:
            await _enqueue_in_transaction(driver, connection, [message])
        else:
            await driver.enqueue(message)
    except BaseException as exc:
        if tracked:
            await dispatching.queueing_failed(driver, tracked, exc)
        raise
    events = get_config().events
    if events.enabled:
        await dispatching.publish_enqueued(driver, [(message, _name(task))], events.retention)
    if middleware:
        # The task is queued: a hook's error must not make a caller that retries on error
        # queue it twice.
        call_hooks(middleware, "after_enqueue", task, message, reverse=True)
    return TaskId(message.task_id, driver)


def _name(task: BaseTask[Any]) -> str:
    return task.function.name if isinstance(task, FunctionTask) else type(task)._task_name


async def dispatch_many(
    tasks: Iterable[BaseTask[Any]], *, connection: Any = None
) -> list[TaskId[Any]]:
    """Queue several tasks with one batch call per driver; return their ids in order.

    Raises:
        SerializationError: a task's argument cannot be serialized; nothing is queued then.
    """
    tasks = list(tasks)
    for t in tasks:
        if t._unsent is not None:
            # All were handed to us: if one fails to encode, the rest must not warn as forgotten.
            handed_over(t)
    prepared = [(t, prepare(t)) for t in tasks]  # all encoded before anything is sent
    groups: dict[int, tuple[Driver, list[OutgoingMessage]]] = {}
    drivers: dict[object, Driver] = {}
    ids: list[TaskId[Any]] = []
    tracked: dict[int, list[dispatching.Tracked]] = {}
    middleware = dispatch_middleware()
    for task, message in prepared:
        if middleware:
            before_enqueue(middleware, task, message)
        spec = task._driver()
        key = spec if spec is None or isinstance(spec, str) else id(spec)
        driver = drivers.get(key)
        if driver is None:  # one lookup per driver, not per task
            driver = drivers[key] = await get_driver(spec)
        if task._option("keep_result") and not keeps_results(driver):
            raise cannot_keep(driver, f"{_name(task)} has keep_result")
        if task._tracked:
            dispatching.check_trackable(driver, _name(task))
            tracked.setdefault(id(driver), []).append((message, _name(task), task._tracked))
        ids.append(TaskId(message.task_id, driver))
        groups.setdefault(id(driver), (driver, []))[1].append(message)
    events = get_config().events
    for driver, messages in groups.values():
        mine = tracked.get(id(driver), [])
        if mine:
            await dispatching.write_first(driver, mine)
        try:
            if connection is not None:
                await _enqueue_in_transaction(driver, connection, messages)
            else:
                await driver.enqueue_many(messages)
        except BaseException as exc:
            if mine:
                await dispatching.queueing_failed(driver, mine, exc)
            raise
        if events.enabled:
            names = {m.task_id: _name(t) for t, m in prepared}
            queued = [(m, names[m.task_id]) for m in messages]
            await dispatching.publish_enqueued(driver, queued, events.retention)
    if middleware:
        for task, message in prepared:
            call_hooks(middleware, "after_enqueue", task, message, reverse=True)
    return ids
