"""The worker's side of workflows: three calls the worker makes for a message that carries
the workflow header (`asynctasq.workflows.spec.HEADER`), and only for such a message.

* `admit`, before the step runs: swap the step's claim from this message's token to
  ``run:<token>``. A copy whose token no longer holds the claim is a stale duplicate (see
  `asynctasq.workflows.queueing`) and is acknowledged unrun; a cancelled step is settled
  as cancelled.
* `advance`, after the step succeeded and *before* its ack: queue what follows (a chain's
  next step with this result; a chord's callback once every member is done). A worker that
  dies between the two leaves the step unacknowledged: it runs again, and asking for the
  next step again queues nothing new (its claim shows it started) or a copy that replaces
  the unstarted one.
* `note_failure`: name the workflow and the step on a failure, so a dead letter says which
  workflow stopped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

import orjson

from asynctasq.errors import MalformedMessageError
from asynctasq.serializer import SerializationError, to_wire
from asynctasq.worker.failures import printable
from asynctasq.worker.job import Job
from asynctasq.workflows import spec
from asynctasq.workflows.queueing import WorkflowStore, enqueue_steps, workflow_store

if TYPE_CHECKING:
    from asynctasq.worker.worker import Worker

log = logging.getLogger("asynctasq.worker")

HEADER = spec.HEADER

_ADVANCE_TRIES = 5
"""Tries at queueing what follows a step before leaving it to the lease (it runs again)."""


def _step(job: Job) -> tuple[str, int, str]:
    workflow_id, index, token = spec.parse_header(job.headers[HEADER])
    if job.task_id != spec.step_id(workflow_id, index, token):
        raise MalformedMessageError(
            f"the {HEADER} header names step {index} of workflow {workflow_id}, which is not "
            f"task {printable(job.task_id)}"
        )
    return workflow_id, index, token


async def admit(worker: Worker, job: Job) -> bool:
    """Whether this workflow step may run now (False: it was settled here, or left to its
    lease after a broker error)."""
    assert worker.driver is not None and job.envelope is not None
    try:
        workflow_id, index, token = _step(job)
        store = workflow_store(worker.driver)
    except (MalformedMessageError, TypeError) as exc:
        await worker._dead_letter(job, MalformedMessageError(str(exc)), "cannot run")
        return False
    running = spec.RUNNING_PREFIX + token
    # The step's results are kept as long as its workflow: so is its claim.
    ttl = job.envelope.keep_result or spec.DEFAULT_TTL
    try:
        holder = await store.claim(spec.step_key(workflow_id, index), running, ttl, replace=token)
    except Exception as exc:
        log.warning(
            "workflow step %s [%s] could not be started (%s); left to its lease",
            printable(job.task_name),
            printable(job.task_id),
            exc,
        )
        return False
    if holder is None or holder == running:  # started now, or again (a retry, a redelivery)
        return True
    if holder == spec.CANCELLED:
        await worker._finish_cancelled(job, worker._lifecycle)
        return False
    log.info(
        "workflow step %s [%s] was queued again since this copy: dropped unrun",
        printable(job.task_name),
        printable(job.task_id),
    )
    worker._ack(job.delivery)
    return False


async def advance(worker: Worker, job: Job, result: Any) -> None:
    """Queue what follows this step, retrying broker errors.

    Raises:
        Exception: the broker kept failing: the step is not acknowledged and runs again
            once its lease expires.
    """
    assert worker.driver is not None
    workflow_id, index, _ = _step(job)  # checked by admit
    store = workflow_store(worker.driver)
    for attempt in range(1, _ADVANCE_TRIES + 1):
        try:
            await _advance(store, job, workflow_id, index, result)
            return
        except Exception as exc:
            if attempt == _ADVANCE_TRIES:
                raise
            log.warning(
                "queueing what follows workflow step %s [%s] failed (%s); trying again",
                printable(job.task_name),
                printable(job.task_id),
                exc,
            )
            await asyncio.sleep(0.1 * 2**attempt)


async def _advance(
    store: WorkflowStore, job: Job, workflow_id: str, index: int, result: Any
) -> None:
    raw = await store.fetch_result(spec.plan_key(workflow_id), 0)
    if raw is None:
        log.error(
            "workflow %s is no longer stored (its ttl passed?): nothing follows step %d",
            workflow_id,
            index,
        )
        return
    try:
        plan = spec.decode(raw)
        if index >= len(plan.steps):
            raise MalformedMessageError(f"workflow {workflow_id} has no step {index}")
    except MalformedMessageError as exc:
        log.error("workflow %s cannot go on after step %d: %s", workflow_id, index, exc)
        return
    last = len(plan.steps) - 1
    if plan.kind == "group" or index == last:
        return
    if plan.kind == "chain":
        try:
            previous = to_wire(result, path=f"the result of {job.task_name}")
        except SerializationError as exc:  # its kept result says so to whoever waits
            log.error("workflow %s stops after step %d: %s", workflow_id, index, exc)
            return
        await _enqueue_or_stop(store, workflow_id, index, plan, index + 1, previous)
        return
    if await _all_done(store, workflow_id, index, last, plan.ttl):
        values = await _member_results(store, workflow_id, last)
        if values is not None:
            await _enqueue_or_stop(store, workflow_id, index, plan, last, values)


async def _enqueue_or_stop(
    store: WorkflowStore, workflow_id: str, index: int, plan: spec.Plan, then: int, value: Any
) -> None:
    """Queue step `then` given `value`; a step that cannot be made into a message stops
    the workflow (logged) instead of failing step `index`, which would then run again."""
    try:
        await enqueue_steps(store, workflow_id, plan, [(then, value)])
    except MalformedMessageError as exc:
        log.error("workflow %s cannot go on after step %d: %s", workflow_id, index, exc)


async def _all_done(
    store: WorkflowStore, workflow_id: str, index: int, members: int, ttl: float
) -> bool:
    """Mark chord member `index` done; whether every member is.

    The marks are a bitmap in hex held by one claim, changed by compare and replace: marking
    twice (a member that ran again) changes nothing, and of members finishing together at
    least the last to mark sees them all.
    """
    key, width, everyone = spec.done_key(workflow_id), (members + 3) // 4, (1 << members) - 1
    while True:
        current = await store.read_claim(key)
        try:
            marks = int(current, 16) if current else 0
        except ValueError:
            log.error("workflow %s has a malformed countdown %r", workflow_id, str(current)[:40])
            return False
        new = marks | (1 << index)
        if new != marks:
            text = format(new, f"0{width}x")
            if await store.claim(key, text, ttl, replace=current) is not None:
                await asyncio.sleep(random.random() * 0.01)  # another member marked first
                continue
        return new & everyone == everyone


async def _member_results(store: WorkflowStore, workflow_id: str, members: int) -> list[Any] | None:
    """The chord members' results in wire form, in order (None when one is missing)."""
    values = []
    for index in range(members):
        token = spec.holder_token(await store.read_claim(spec.step_key(workflow_id, index)))
        raw = None
        if token is not None:
            raw = await store.fetch_result(spec.step_id(workflow_id, index, token), 0)
        try:
            doc = None if raw is None else orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or "ok" not in doc:
            log.error(
                "workflow %s: the result of step %d is missing or not a success; its callback "
                "is not queued",
                workflow_id,
                index,
            )
            return None
        values.append(doc["ok"])
    return values


def note_failure(job: Job, exc: BaseException) -> None:
    """Name the workflow and the step on `exc` (kept in the dead letter's traceback)."""
    try:
        workflow_id, index, _ = _step(job)
    except MalformedMessageError:
        return
    exc.add_note(
        f"in workflow {workflow_id}, step {index} ({job.task_name}): if this step fails for "
        "good, the workflow stops here"
    )
