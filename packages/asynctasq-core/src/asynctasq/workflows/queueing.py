"""Queueing a workflow's steps, exactly once per step however often it is asked.

Each step has a claim (`asynctasq.workflows.spec.step_key`). Queueing a step first makes a
fresh random token hold it, then queues the step's message carrying that token; the worker
that starts the message swaps the token for ``run:<token>`` (`asynctasq.workflows.runner`).
So when a step is asked for again (the previous step ran twice because its worker died
before its ack, or two chord members finished together):

* held by ``run:...``: the step started already; nothing is queued;
* held by ``cancelled``: its workflow was cancelled; nothing is queued;
* held by a bare token: queued, not started, or lost (the dispatcher may have died between
  its claim and its enqueue). Nobody can tell, so the step is queued again under a new
  token that replaces the old one (compare and replace): whichever copy a worker starts
  first wins the swap, and a copy whose token no longer holds the claim is dropped unrun.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from asynctasq.drivers.base import ClaimStore, Driver, OutgoingMessage, ResultStore, StatusStore
from asynctasq.drivers.registry import use_one_of
from asynctasq.lifecycle import dispatching
from asynctasq.workflows.spec import CANCELLED, RUNNING_PREFIX, Plan, render, step_id, step_key

_TAKE_TRIES = 8
"""Compare-and-replace rounds before leaving a step to whoever keeps replacing its token."""


@runtime_checkable
class WorkflowStore(Driver, ResultStore, ClaimStore, Protocol):
    """What a driver needs to run workflows: a results store and atomic claims."""


def workflow_store(driver: Driver) -> WorkflowStore:
    """`driver` as a `WorkflowStore`.

    Raises:
        TypeError: it cannot run workflows (the message names the drivers that can).
    """
    if not isinstance(driver, WorkflowStore):
        raise TypeError(
            f"{type(driver).__name__} cannot run workflows (chain, group, chord need a results "
            f"store and atomic claims); {use_one_of(WorkflowStore)}"
        )
    return driver


async def _take(store: WorkflowStore, workflow_id: str, index: int, ttl: float) -> str | None:
    """A token now holding step `index`'s claim, or None when the step must not be queued."""
    key, token = step_key(workflow_id, index), str(uuid.uuid4())
    replace: str | None = None
    for _ in range(_TAKE_TRIES):
        holder = await store.claim(key, token, ttl, replace=replace)
        if holder is None:
            return token
        if holder == CANCELLED or holder.startswith(RUNNING_PREFIX):
            return None
        replace = holder  # queued (or lost) under another token: take it over
    return None


async def enqueue_steps(
    store: WorkflowStore, workflow_id: str, plan: Plan, steps: Sequence[tuple[int, Any]]
) -> int:
    """Queue the steps ``(index, previous result in wire form)`` that are neither started
    nor cancelled, in one batch; returns how many were queued."""
    messages: list[OutgoingMessage] = []
    tracked: list[dispatching.Tracked] = []
    now = time.time()
    for index, previous in steps:
        token = await _take(store, workflow_id, index, plan.ttl)
        if token is None:
            continue
        step = plan.steps[index]
        message = OutgoingMessage(
            task_id=step_id(workflow_id, index, token),
            queue=step.queue,
            payload=render(plan, workflow_id, index, token, now, previous),
            delay=step.delay,
            visibility_timeout=step.visibility_timeout,
        )
        messages.append(message)
        if step.track and isinstance(store, StatusStore):
            tracked.append((message, step.task_name, step.track))
    if tracked:
        await dispatching.write_first(store, tracked)
    if len(messages) == 1:
        await store.enqueue(messages[0])
    elif messages:
        await store.enqueue_many(messages)
    return len(messages)
