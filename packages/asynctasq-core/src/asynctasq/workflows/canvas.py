"""`chain`, `group` and `chord`: workflows built from task calls, dispatched as one.

Dispatching one encodes every step now (a bad argument fails before anything is queued),
stores the plan in the results store, and queues the first steps; the workers queue the
rest (`asynctasq.workflows.runner`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from typing import Any, Generic, TypeVar, overload

import orjson

from asynctasq.core.dispatch import prepare
from asynctasq.core.function import TaskFunction
from asynctasq.core.headers import MAX_HEADERS
from asynctasq.core.options import MAX_SECONDS
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import Driver
from asynctasq.drivers.connections import get_driver
from asynctasq.workflows import spec
from asynctasq.workflows.handle import WorkflowHandle
from asynctasq.workflows.queueing import enqueue_steps, workflow_store
from asynctasq.workflows.steps import Step, driver_of, plain

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")

Link = BaseTask[T] | TaskFunction[..., T]
"""A step: a full task call (``f(1)``, ``MyTask(x=1)``: runs after the previous step and
ignores its result), a `Step` (``f.step(2)``: receives it first), or a bare task function
(``f``: the same as ``f.step()``)."""


def _link(value: Any, what: str) -> BaseTask[Any]:
    if isinstance(value, TaskFunction):
        return Step(value, (), {})
    if isinstance(value, Workflow):
        raise TypeError(
            f"{what} is a {value.kind}: workflows do not nest yet; use a chord for "
            "'these in parallel, then that'"
        )
    if not isinstance(value, BaseTask):
        raise TypeError(
            f"{what} must be a task call, a task.step(...) or a @task function, got "
            f"{type(value).__name__}"
        )
    return value


class Workflow(Generic[T]):
    """Steps to dispatch together; see `chain`, `group`, `chord`."""

    kind: spec.Kind

    def __init__(self, steps: list[BaseTask[Any]]) -> None:
        if len(steps) > spec.MAX_STEPS:
            raise ValueError(
                f"a {self.kind} of {len(steps)} steps is too long: at most {spec.MAX_STEPS}"
            )
        self.steps = steps

    def __repr__(self) -> str:
        return f"<{self.kind} of {len(self.steps)} steps>"

    async def dispatch(self, *, ttl: float = spec.DEFAULT_TTL) -> WorkflowHandle[T]:
        """Queue the workflow; return its handle.

        Args:
            ttl: Seconds the workflow's state and its steps' results are kept (default a
                day): it must outlast the whole workflow, delays and retries included.

        Raises:
            TypeError: the driver cannot run workflows (names those that can), or the steps
                go to different drivers.
            ValueError: a step cannot be part of a workflow (a unique task), or `ttl` is
                not a number of seconds.
            SerializationError: a step's argument cannot be serialized; nothing is queued.
        """
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not (math.isfinite(ttl) and 0 < ttl <= MAX_SECONDS)
        ):
            raise ValueError(f"ttl must be a number of seconds above 0, got {ttl!r}")
        driver = await self._driver()
        store = workflow_store(driver)
        workflow_id = str(uuid.uuid4())
        planned = [_plan(task, float(ttl), workflow_id, i) for i, task in enumerate(self.steps)]
        plan = spec.Plan(self.kind, float(ttl), tuple(planned))
        await store.store_result(spec.plan_key(workflow_id), plan.encode(), float(ttl))
        await enqueue_steps(store, workflow_id, plan, [(i, None) for i in plan.first])
        names = tuple(s.task_name for s in planned)
        return WorkflowHandle(workflow_id, self.kind, names, float(ttl), driver)

    async def _driver(self) -> Driver:
        driver: Driver | None = None
        for index, task in enumerate(self.steps):
            found = await get_driver(driver_of(task))
            if driver is not None and found is not driver:
                raise TypeError(
                    f"step {index} of the {self.kind} goes to another driver than step 0: "
                    "a workflow's steps must share one driver"
                )
            driver = found
        assert driver is not None
        return driver


def _plan(task: BaseTask[Any], ttl: float, workflow_id: str, index: int) -> spec.PlannedStep:
    call, takes_previous = plain(task)
    name = call._display_name()
    if call._option("unique"):
        raise ValueError(
            f"{name} is a unique task: it cannot be a workflow step (a workflow queues each "
            "step once already)"
        )
    if (call._option("keep_result") or 0) < ttl:  # every step's result is kept, for the next
        call._set_option("keep_result", ttl)
    message = prepare(call)
    task._task_id = None  # each queueing of a step gets its own id (see spec.step_id)
    envelope = orjson.loads(message.payload)
    if len(envelope.get("h") or {}) >= MAX_HEADERS:
        raise ValueError(
            f"{name}: the middleware attach {MAX_HEADERS} headers, leaving no room for the "
            f"workflow's ({spec.HEADER})"
        )
    return spec.PlannedStep(
        task_name=name,
        queue=message.queue,
        delay=message.delay,
        visibility_timeout=message.visibility_timeout,
        track=call._tracked,
        takes_previous=takes_previous,
        envelope=envelope,
    )


class Chain(Workflow[T]):
    """Steps run one after the other; each `Step` receives the previous step's result.
    Its result is the last step's."""

    kind: spec.Kind = "chain"


class Group(Workflow[list[T]]):
    """Tasks run in parallel; its result is the list of theirs, in the group's order."""

    kind: spec.Kind = "group"

    def __init__(self, steps: list[BaseTask[Any]]) -> None:
        super().__init__(steps)
        self.members = steps


class Chord(Workflow[T]):
    """A group, then a callback that receives the list of the group's results (when it is a
    `Step` or a bare task function). Its result is the callback's."""

    kind: spec.Kind = "chord"


@overload
def chain(s1: Link[T1], /) -> Chain[T1]: ...
@overload
def chain(s1: Link[Any], s2: Link[T2], /) -> Chain[T2]: ...
@overload
def chain(s1: Link[Any], s2: Link[Any], s3: Link[T3], /) -> Chain[T3]: ...
@overload
def chain(s1: Link[Any], s2: Link[Any], s3: Link[Any], s4: Link[T4], /) -> Chain[T4]: ...
@overload
def chain(
    s1: Link[Any], s2: Link[Any], s3: Link[Any], s4: Link[Any], s5: Link[T5], /
) -> Chain[T5]: ...
@overload
def chain(
    s1: Link[Any], s2: Link[Any], s3: Link[Any], s4: Link[Any], s5: Link[Any], s6: Link[T6], /
) -> Chain[T6]: ...
@overload
def chain(*steps: Link[Any]) -> Chain[Any]: ...


def chain(*steps: Link[Any]) -> Chain[Any]:
    """Steps that run one after the other: ``chain(fetch(url), parse, store.step(table))``.

    A `Step` (``parse.step()``, or the bare ``parse``) receives the previous step's result
    as its first positional argument; a full call (``notify("done")``) runs after it and
    ignores it. A failing step stops the chain. ``await chain(...).dispatch()`` returns a
    `WorkflowHandle` whose ``result()`` is the last step's.

    Raises:
        TypeError: no steps, a step that is not a task, or a first step waiting for a
            previous result.
    """
    if not steps:
        raise TypeError("chain() needs at least one step")
    links = [_link(s, f"step {i} of the chain") for i, s in enumerate(steps)]
    if isinstance(links[0], Step):
        raise TypeError(
            f"the chain's first step, {links[0].function.name}, waits for a previous result "
            "but has none: call it with all its arguments"
        )
    return Chain(links)


def group(tasks: Iterable[BaseTask[T]], /) -> Group[T]:
    """Tasks that run in parallel: ``group(resize(p) for p in photos)``. The result of its
    handle is the list of their results, in this order; a failing task fails it.

    Raises:
        TypeError: no tasks, or one that is not a full task call.
    """
    members = list(tasks)
    if not members:
        raise TypeError("group() needs at least one task")
    for index, member in enumerate(members):
        if isinstance(_link(member, f"task {index} of the group"), Step):
            raise TypeError(
                f"task {index} of the group, {member!r}, waits for a previous result: a "
                "group's tasks run at once and need all their arguments"
            )
    return Group(members)


def chord(tasks: Group[Any] | Iterable[BaseTask[Any]], callback: Link[T], /) -> Chord[T]:
    """A group, then `callback` with the list of the group's results (in the group's order)
    as its first positional argument: ``chord(group(count(p) for p in pages), total)``.

    The callback is queued by the worker that finishes the group's last task; a failing
    task in the group means the callback never runs.

    Raises:
        TypeError: see `group`; or the callback is not a task.
    """
    members = tasks if isinstance(tasks, Group) else group(tasks)
    if len(members.members) >= spec.MAX_STEPS:
        raise ValueError(f"a chord's group may hold at most {spec.MAX_STEPS - 1} tasks")
    return Chord([*members.members, _link(callback, "the chord's callback")])
