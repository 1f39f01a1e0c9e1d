"""Putting tasks on queues: `dispatch` (one) and `dispatch_many` (one round-trip per driver)."""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from asynctasq.config import get_config
from asynctasq.core import envelope, limit_keys, unique
from asynctasq.core.function import FunctionTask
from asynctasq.core.options import ResolvedOptions, resolve, resolve_cached
from asynctasq.core.results import TaskId, cannot_keep, canonical_task_id, keeps_results
from asynctasq.core.task import BaseTask, handed_over
from asynctasq.core.timing import epoch
from asynctasq.drivers.base import ClaimStore, Driver, OutgoingMessage, TransactionalEnqueue
from asynctasq.drivers.connections import get_driver
from asynctasq.lifecycle import dispatching
from asynctasq.middleware import (
    Middleware,
    before_enqueue,
    call_hooks,
    dispatch_middleware,
    message_headers,
)

T = TypeVar("T")


Claim = tuple[str, float]
"""A unique task's claim: (key, ttl in seconds)."""


def prepare(task: BaseTask[Any], *, task_id: str | None = None) -> OutgoingMessage:
    """Assign an id (`task_id` if given: a UUID string), resolve settings and encode:
    everything but the driver call (and the dispatch middleware's hooks, except
    ``message_headers``)."""
    return _prepare(task, dispatch_middleware(), task_id)[0]


def _prepare(
    task: BaseTask[Any], middleware: list[Middleware], task_id: str | None = None
) -> tuple[OutgoingMessage, Claim | None]:
    """`prepare`, and the claim a unique task must take before it is queued."""
    if task._unsent is not None:
        handed_over(task)  # a dispatch was asked for: whatever happens now is reported
    defaults = get_config().task_defaults
    if task._overrides():
        options = resolve(task._settings(), defaults)
    else:
        owner = task.function if isinstance(task, FunctionTask) else type(task)
        options = resolve_cached(owner, task._class_options, defaults)
    task_id = str(uuid.uuid4()) if task_id is None else canonical_task_id(task_id)
    now = time.time()
    claim: Claim | None = None
    if options.unique is not None:
        key = unique.key_for(task, _name(task), options.unique)
        if key is not None:
            claim = (key, unique.claim_ttl(options.unique, options.delay))
    if options.expires is not None and options.delay:
        _check_due_before_expiry(task, options, now)
    headers = message_headers(middleware, task) if middleware else None
    payload = envelope.encode(task, task_id, options, now, claim[0] if claim else None, headers)
    task._tracked = options.track
    task._task_id = task_id
    task._dispatched_at = datetime.fromtimestamp(now, UTC)
    message = OutgoingMessage(
        task_id=task_id,
        queue=options.queue,
        payload=payload,
        delay=options.delay,
        visibility_timeout=options.visibility_timeout,
        priority=options.priority,
    )
    return message, claim


def _check_due_before_expiry(task: BaseTask[Any], options: ResolvedOptions, now: float) -> None:
    assert options.expires is not None
    if epoch(options.expires, now) <= now + options.delay:
        raise ValueError(
            f"{_name(task)} would expire before it is due (delay {options.delay:g} s, "
            f"expires {options.expires!r}): nothing was queued; move the expiry after the "
            "delay (a number of seconds for expires counts from the dispatch)"
        )


def _no_transaction(task: BaseTask[Any]) -> ValueError:
    return ValueError(
        f"{_name(task)} is a unique task: it cannot be queued inside a transaction "
        "(dispatch(connection=...)), whose rollback would leave its key claimed by a task that "
        "does not exist; dispatch it after the commit"
    )


async def _enqueue_in_transaction(
    driver: Driver,
    connection: Any,
    messages: Sequence[OutgoingMessage],
    tracked: Sequence[dispatching.Tracked],
) -> None:
    """Queue `messages` in the caller's transaction, with the first status records of the
    `tracked` ones (see `asynctasq.lifecycle.dispatching`)."""
    if not isinstance(driver, TransactionalEnqueue):
        raise TypeError(
            f"{type(driver).__name__} cannot queue inside a caller's transaction "
            "(dispatch(connection=...) needs the postgres or mysql driver)"
        )
    if tracked:
        if _takes_statuses(driver):
            statuses = dispatching.first_writes(tracked)
            await driver.enqueue_with_connection(connection, messages, statuses=statuses)
            return
        # A driver written before status records joined the transaction: as it was then.
        await dispatching.write_first(driver, tracked)
    await driver.enqueue_with_connection(connection, messages)


_TAKES_STATUSES: dict[type, bool] = {}


def _takes_statuses(driver: TransactionalEnqueue) -> bool:
    kind = type(driver)
    takes = _TAKES_STATUSES.get(kind)
    if takes is None:
        parameters = inspect.signature(driver.enqueue_with_connection).parameters
        takes = _TAKES_STATUSES[kind] = "statuses" in parameters
    return takes


async def _enqueue(
    driver: Driver,
    connection: Any,
    messages: Sequence[OutgoingMessage],
    tracked: Sequence[dispatching.Tracked],
    *,
    single: bool = False,
) -> None:
    """Queue `messages` (in the caller's transaction when `connection` is given), with the
    first status records of the `tracked` ones; `single`: the one message of a dispatch."""
    if connection is not None:
        # Whatever fails here, the caller's transaction decides what is kept.
        await _enqueue_in_transaction(driver, connection, messages, tracked)
        return
    if tracked:
        await dispatching.write_first(driver, tracked)
    try:
        if single:
            [message] = messages
            await driver.enqueue(message)
        else:
            await driver.enqueue_many(messages)
    except BaseException as exc:
        if tracked:
            await dispatching.queueing_failed(driver, tracked, exc)
        raise


async def dispatch(
    task: BaseTask[T], *, connection: Any = None, task_id: str | None = None
) -> TaskId[T]:
    """Queue one task and return its id. See `BaseTask.dispatch`.

    A unique task whose key is held queues nothing and returns the holder's id. `task_id`
    (a UUID string) replaces the random id: the scheduler gives each tick's task a
    deterministic one, so a second dispatch of a tick shows as the same id.
    """
    middleware = dispatch_middleware()
    message, claim = _prepare(task, middleware, task_id)
    if claim is not None and connection is not None:
        raise _no_transaction(task)
    if middleware:
        before_enqueue(middleware, task, message)  # may veto: nothing is queued yet
    driver = await get_driver(task._driver())
    kept = task._option("keep_result")
    if kept and not keeps_results(driver):
        raise cannot_keep(driver, f"{_name(task)} has keep_result")  # before anything is queued
    if limit_keys.is_limited(task):
        limit_keys.limit_store(driver, _name(task))  # refused here, not dead-lettered later
    tracked: list[dispatching.Tracked] = []
    if task._tracked:
        dispatching.check_trackable(driver, _name(task))  # before a unique key is claimed
        tracked.append((message, _name(task), task._tracked))
    store: ClaimStore | None = None
    if claim is not None:
        store = unique.claim_store(driver, _name(task))
        holder = await store.claim(claim[0], message.task_id, claim[1])
        if holder is not None:  # queued or running already: this dispatch is that task
            task._task_id = holder
            return TaskId(holder, task._driver())
    try:
        if connection is None and not tracked:
            await driver.enqueue(message)  # the common case, without a coroutine more
        else:
            await _enqueue(driver, connection, [message], tracked, single=True)
    except BaseException:
        if store is not None and claim is not None:
            await unique.release_all(store, [(claim[0], message.task_id)])
        raise
    events = get_config().events
    if events.enabled and connection is None:  # see asynctasq.lifecycle.dispatching
        await dispatching.publish_enqueued(driver, [(message, _name(task))], events.retention)
    if middleware:
        # The task is queued: a hook's error must not make a caller that retries on error
        # queue it twice.
        call_hooks(middleware, "after_enqueue", task, message, reverse=True)
    return TaskId(message.task_id, task._driver(), unkept=None if kept else _name(task))


def _name(task: BaseTask[Any]) -> str:
    return task.function.name if isinstance(task, FunctionTask) else type(task)._task_name


class _Group:
    """The messages of one dispatch_many call bound for one driver."""

    __slots__ = ("claims", "driver", "messages", "tracked")

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.messages: list[OutgoingMessage] = []
        self.tracked: list[dispatching.Tracked] = []
        self.claims: list[tuple[str, str]] = []  # (key, holder) taken for this group


async def dispatch_many(
    tasks: Iterable[BaseTask[Any]], *, connection: Any = None
) -> list[TaskId[Any]]:
    """Queue several tasks with one batch call per driver; return their ids in order.

    Unique tasks claim their keys one by one, in order, before anything is queued: one whose
    key is held (by an earlier dispatch, or by an earlier task of this batch) is not queued
    and its place in the returned list holds the holder's id. Claims of tasks that end up not
    queued (an error) are released.

    Raises:
        SerializationError: a task's argument cannot be serialized; nothing is queued then.
    """
    tasks = list(tasks)
    for t in tasks:
        if t._unsent is not None:
            # All were handed to us: if one fails to encode, the rest must not warn as forgotten.
            handed_over(t)
    middleware = dispatch_middleware()
    # All encoded before anything is sent.
    prepared = [(t, *_prepare(t, middleware)) for t in tasks]
    groups: dict[int, _Group] = {}
    drivers: dict[object, Driver] = {}
    entries: list[tuple[BaseTask[Any], OutgoingMessage, Claim | None, _Group]] = []
    kept: list[bool] = []  # keep_result, read once per task
    for task, message, claim in prepared:
        if claim is not None and connection is not None:
            raise _no_transaction(task)
        if middleware:
            before_enqueue(middleware, task, message)
        spec = task._driver()
        key = spec if spec is None or isinstance(spec, str) else id(spec)
        driver = drivers.get(key)
        if driver is None:  # one lookup per driver, not per task
            driver = drivers[key] = await get_driver(spec)
        kept.append(bool(task._option("keep_result")))
        if kept[-1] and not keeps_results(driver):
            raise cannot_keep(driver, f"{_name(task)} has keep_result")
        if limit_keys.is_limited(task):
            limit_keys.limit_store(driver, _name(task))
        if task._tracked:
            dispatching.check_trackable(driver, _name(task))
        if claim is not None:
            unique.claim_store(driver, _name(task))  # refused before any key is claimed
        group = groups.get(id(driver))
        if group is None:
            group = groups[id(driver)] = _Group(driver)
        entries.append((task, message, claim, group))
    holders = await _claim_keys(entries)
    ids: list[TaskId[Any]] = []
    queued: list[tuple[BaseTask[Any], OutgoingMessage]] = []
    for index, (task, message, _, group) in enumerate(entries):
        holder = holders.get(index)
        if holder is not None:  # its key is held: this task is that one
            task._task_id = holder
            ids.append(TaskId(holder, task._driver()))
            continue
        unkept = None if kept[index] else _name(task)
        ids.append(TaskId(message.task_id, task._driver(), unkept=unkept))
        queued.append((task, message))
        group.messages.append(message)
        if task._tracked:
            group.tracked.append((message, _name(task), task._tracked))
    await _enqueue_groups(list(groups.values()), connection)
    events = get_config().events
    if events.enabled and connection is None:  # see asynctasq.lifecycle.dispatching
        names = {m.task_id: _name(t) for t, m in queued}
        for group in groups.values():
            if group.messages:
                batch = [(m, names[m.task_id]) for m in group.messages]
                await dispatching.publish_enqueued(group.driver, batch, events.retention)
    if middleware:
        for task, message in queued:
            call_hooks(middleware, "after_enqueue", task, message, reverse=True)
    return ids


async def _claim_keys(
    entries: Sequence[tuple[BaseTask[Any], OutgoingMessage, Claim | None, _Group]],
) -> dict[int, str]:
    """Claim the keys of the unique tasks among `entries`, in order; return the holder of
    each key that was held already, by the entry's index. An error releases every claim
    taken so far (nothing is queued)."""
    held: dict[int, str] = {}
    taken: list[_Group] = []
    try:
        for index, (_, message, claim, group) in enumerate(entries):
            if claim is None:
                continue
            store = cast(ClaimStore, group.driver)  # checked by unique.claim_store
            holder = await store.claim(claim[0], message.task_id, claim[1])
            if holder is None:
                group.claims.append((claim[0], message.task_id))
                taken.append(group)
            else:
                held[index] = holder
    except BaseException:
        await _release_groups(taken)
        raise
    return held


async def _enqueue_groups(groups: Sequence[_Group], connection: Any) -> None:
    """Queue each group's messages; when one fails, release the claims of that group and of
    those after it (none of them is queued)."""
    for position, group in enumerate(groups):
        if not group.messages:
            continue
        driver = group.driver
        try:
            await _enqueue(driver, connection, group.messages, group.tracked)
        except BaseException:
            await _release_groups(groups[position:])
            raise


async def _release_groups(groups: Sequence[_Group]) -> None:
    seen: set[int] = set()
    for group in groups:
        if id(group) not in seen and group.claims:
            seen.add(id(group))
            await unique.release_all(cast(ClaimStore, group.driver), group.claims)
