"""`WorkflowHandle`: what dispatching a workflow returns; waits for, reports on and cancels
it by reading the steps' results and claims (`asynctasq.workflows.spec`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar, cast

import orjson

from asynctasq.core import results
from asynctasq.drivers.base import Driver, EventLog
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import AsyncTasQError, ResultTimeoutError, TaskFailedError
from asynctasq.lifecycle import control
from asynctasq.lifecycle.control import CancelOutcome
from asynctasq.workflows import spec
from asynctasq.workflows.queueing import WorkflowStore, workflow_store

T = TypeVar("T")

_POLL = 1.0
"""Longest single wait for a step's result before looking whether the workflow was
cancelled."""
_NOT_QUEUED_POLL = 0.1
"""Seconds between looks at a step that is not queued yet."""


class StepFailedError(TaskFailedError):
    """Awaiting a workflow: one of its steps failed for good, and the workflow stopped.

    Attributes:
        workflow_id: The workflow's id.
        step: The failed step's index (0 is the first).
        task_name: The failed step's task.
    """

    def __init__(
        self, workflow_id: str, step: int, task_name: str, failure: TaskFailedError
    ) -> None:
        super().__init__(failure.task_id, failure.exception_type, failure.message)
        self.args = (
            f"step {step} ({task_name}) of workflow {workflow_id} failed for good: "
            f"{failure.exception_type}: {failure.message}",
        )
        self.workflow_id = workflow_id
        self.step = step
        self.task_name = task_name


class WorkflowCancelledError(AsyncTasQError):
    """Awaiting a workflow: it was cancelled before it finished."""


class StepState(StrEnum):
    """Where one step of a workflow is."""

    WAITING = "waiting"
    """Not queued yet (a chain's later step, a chord's callback)."""
    QUEUED = "queued"
    """Queued, not started."""
    RUNNING = "running"
    """Started (running, or waiting to retry after a failed run)."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Failed for good and dead-lettered."""
    CANCELLED = "cancelled"
    """Cancelled before it started."""


class WorkflowState(StrEnum):
    """Where a workflow is."""

    RUNNING = "running"
    """Not finished: some step waits, is queued or runs."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """A step failed for good: nothing after it runs."""
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class StepStatus:
    """One step of a `WorkflowStatus`."""

    index: int
    task_id: str | None
    """The id of its copy that is queued or ran; None while it waits (or if cancelled
    before it was queued)."""
    task_name: str
    state: StepState


@dataclass(frozen=True, slots=True)
class WorkflowStatus:
    """What `WorkflowHandle.status` found."""

    workflow_id: str
    kind: spec.Kind
    state: WorkflowState
    steps: tuple[StepStatus, ...]


class WorkflowHandle(Generic[T]):
    """A dispatched workflow: ``await handle.result()``, ``status()``, ``cancel()``.

    Attributes:
        id: The workflow's id (`asynctasq.workflows.workflow` finds it again by it).
        kind: ``"chain"``, ``"group"`` or ``"chord"``.
        task_names: Each step's task, in order (a chord's callback last).
    """

    def __init__(
        self,
        workflow_id: str,
        kind: spec.Kind,
        task_names: tuple[str, ...],
        ttl: float,
        driver: Driver,
    ) -> None:
        self.id = workflow_id
        self.kind: spec.Kind = kind
        self.task_names = task_names
        self._ttl = ttl
        self._driver = driver

    def __repr__(self) -> str:
        return f"<workflow {self.kind} {self.id} ({len(self.task_names)} steps)>"

    @property
    def _store(self) -> WorkflowStore:
        return workflow_store(self._driver)

    async def _holder(self, index: int) -> str | None:
        return await self._store.read_claim(spec.step_key(self.id, index))

    async def _task_id(self, index: int) -> str | None:
        """The task id of step `index`'s copy that is queued or ran; None before."""
        token = spec.holder_token(await self._holder(index))
        return None if token is None else spec.step_id(self.id, index, token)

    async def result(self, timeout: float | None = None) -> T:
        """Wait for the workflow to finish and return its result: a chain's last step's, a
        group's list of results (in the group's order), a chord's callback's.

        Raises:
            StepFailedError: a step failed for good (a `TaskFailedError` naming the step).
            WorkflowCancelledError: the workflow was cancelled.
            ResultTimeoutError: not finished within `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last = len(self.task_names) - 1
        values = []
        for index in range(len(self.task_names)):
            keep = self.kind == "group" or index == last
            values.append(await self._wait(index, deadline, timeout, keep))
        return cast(T, values if self.kind == "group" else values[-1])

    async def _wait(
        self, index: int, deadline: float | None, timeout: float | None, keep: bool
    ) -> Any:
        store = self._store
        while True:
            left = _POLL if deadline is None else min(deadline - time.monotonic(), _POLL)
            task_id = await self._task_id(index)
            if task_id is None:  # not queued yet: look again soon
                await asyncio.sleep(max(min(left, _NOT_QUEUED_POLL), 0.0))
                raw = None
            else:  # a re-queued copy replaces this one's token: waits stay short
                raw = await store.fetch_result(task_id, max(left, 0.0))
            if raw is not None:
                assert task_id is not None
                try:
                    _check(task_id, raw)
                    value = await results.decode(task_id, raw) if keep else None
                except TaskFailedError as exc:
                    raise StepFailedError(self.id, index, self.task_names[index], exc) from None
                return value
            if await store.read_claim(spec.cancelled_key(self.id)) is not None:
                raise WorkflowCancelledError(f"workflow {self.id} was cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(
                    f"workflow {self.id} did not finish within {timeout} s (waiting for step "
                    f"{index}, {self.task_names[index]})"
                )

    async def status(self) -> WorkflowStatus:
        """Where the workflow and each of its steps are (two reads per step)."""
        store = self._store
        cancelled = await store.read_claim(spec.cancelled_key(self.id)) is not None
        steps = []
        for index, name in enumerate(self.task_names):
            holder = await self._holder(index)
            token = spec.holder_token(holder)
            task_id = None if token is None else spec.step_id(self.id, index, token)
            raw = None if task_id is None else await store.fetch_result(task_id, 0)
            step_state = _step_state(raw, holder)
            if cancelled and step_state in (StepState.RUNNING, StepState.QUEUED):
                # Stopped by the cancel (its run claim is not rewritten when it ends).
                step_state = StepState.CANCELLED
            steps.append(StepStatus(index, task_id, name, step_state))
        states = {s.state for s in steps}
        if states == {StepState.SUCCEEDED}:
            state = WorkflowState.SUCCEEDED
        elif StepState.FAILED in states:
            state = WorkflowState.FAILED
        elif cancelled:
            state = WorkflowState.CANCELLED
        else:
            state = WorkflowState.RUNNING
        return WorkflowStatus(self.id, self.kind, state, tuple(steps))

    async def cancel(self) -> CancelOutcome:
        """Cancel the workflow: steps not started never run, running ones are stopped
        (`asynctasq.cancel`), and nothing more is queued.

        Returns:
            `CancelOutcome.ALREADY_FINISHED` when every step had finished (nothing
            changed); `CancelOutcome.REQUESTED` otherwise.
        """
        store = self._store
        current = await self.status()
        if all(s.state in _ENDED for s in current.steps):
            return CancelOutcome.ALREADY_FINISHED
        await store.claim(spec.cancelled_key(self.id), "1", self._ttl)
        to_stop = []
        for step in current.steps:
            if step.state not in _ENDED:
                task_id = await self._cancel_step(store, step.index)
                if task_id is not None:
                    to_stop.append(task_id)
        if isinstance(store, EventLog):  # queued ones get a cancelled record, running stop
            for task_id in to_stop:
                # A claim holder that is no task id (written behind the driver's back) names
                # nothing to stop; the other steps still are.
                with contextlib.suppress(ValueError):
                    await control.cancel(task_id, driver=store)
        return CancelOutcome.REQUESTED

    async def _cancel_step(self, store: WorkflowStore, index: int) -> str | None:
        """Make step `index` cancelled unless it started; the id of its copy that was
        queued or started (which `asynctasq.cancel` must stop too), if any."""
        key = spec.step_key(self.id, index)
        while True:
            holder = await store.read_claim(key)
            if holder == spec.CANCELLED:
                return None
            if holder is not None and holder.startswith(spec.RUNNING_PREFIX):
                return spec.step_id(self.id, index, holder.removeprefix(spec.RUNNING_PREFIX))
            if await store.claim(key, spec.CANCELLED, self._ttl, replace=holder) is None:
                return None if holder is None else spec.step_id(self.id, index, holder)


_ENDED = frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELLED})


def _check(task_id: str, raw: bytes) -> None:
    """Raise `TaskFailedError` if the outcome `raw` is a failure (without decoding a
    success's value: only the last step's is returned)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TaskFailedError(task_id, "?", "its stored outcome is not valid JSON") from None
    if not isinstance(doc, dict) or "ok" not in doc:
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, list) and len(error) == 2:
            raise TaskFailedError(task_id, str(error[0])[:200], str(error[1])[:2000])
        raise TaskFailedError(task_id, "?", "its stored outcome is malformed")


def _step_state(raw: bytes | None, holder: str | None) -> StepState:
    if raw is not None:
        try:
            _check("", raw)
        except TaskFailedError:
            return StepState.FAILED
        return StepState.SUCCEEDED
    if holder is None:
        return StepState.WAITING
    if holder == spec.CANCELLED:
        return StepState.CANCELLED
    return StepState.RUNNING if holder.startswith(spec.RUNNING_PREFIX) else StepState.QUEUED


async def workflow(workflow_id: str, *, driver: str | Driver | None = None) -> WorkflowHandle[Any]:
    """The handle of workflow `workflow_id` (dispatched earlier, perhaps elsewhere).

    Raises:
        LookupError: no such workflow is stored (never dispatched, or its ttl passed).
        TypeError: the driver cannot run workflows.
    """
    the_driver = await get_driver(driver)
    store = workflow_store(the_driver)
    raw = await store.fetch_result(spec.plan_key(str(workflow_id)), 0)
    if raw is None:
        raise LookupError(f"no workflow {str(workflow_id)[:100]!r} is stored (or its ttl passed)")
    plan = spec.decode(raw)
    names = tuple(s.task_name for s in plan.steps)
    return WorkflowHandle(str(workflow_id), plan.kind, names, plan.ttl, the_driver)
