"""Testing code that dispatches tasks: in-memory queues, runs until idle, eager mode, asserts.

`memory_queues()` points dispatch at a fresh in-memory driver for the duration of a ``with``
block and restores the configuration after it; the pytest fixtures ``asynctasq_queues`` and
``asynctasq_eager`` (the ``_asynctasq_pytest`` plugin) are thin wrappers around it.

Tasks run through the real `Worker` (the same decoding, retries, hooks, timeouts and
dead-lettering as in production), in this process, without sleeping through retry delays.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asynctasq.config as config_module
from asynctasq.config import set_global_config
from asynctasq.core.function import FunctionTask, TaskFunction
from asynctasq.core.task import BaseTask
from asynctasq.drivers import _memory_inspect
from asynctasq.drivers.base import Failure, OutgoingMessage
from asynctasq.drivers.memory import MemoryDriver, forget_namespace
from asynctasq.errors import TaskFailedError
from asynctasq.middleware import Middleware, add_middleware, remove_middleware
from asynctasq.worker.job import Job
from asynctasq.worker.worker import Worker

OutcomeState = Literal["succeeded", "failed", "dead_lettered", "cancelled"]
TaskRef = TaskFunction[..., Any] | type[BaseTask[Any]] | str
"""A task as tests name it: the decorated function, the task class, or its name."""

MAX_RUNS = 10_000
"""Most task runs one `MemoryQueues.run_until_idle` call makes (a task that dispatches
itself forever must end the test, not hang it)."""

_running_eagerly: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "asynctasq_running_eagerly", default=False
)


@dataclass(slots=True)
class TaskOutcome:
    """How a task's runs ended.

    Attributes:
        task_id: The task's id.
        task: The task's name (``module:qualname``).
        state: ``succeeded``; ``failed`` (its last run failed and a retry is still queued,
            e.g. with ``run_until_idle(delayed=False)``); ``dead_lettered`` (failed for
            good, or could not run); ``cancelled``.
        result: What the last run returned (succeeded only).
        error: The exception of the last failed run (None if it never ran).
        failure: What the dead letter keeps (type, message, traceback), when dead-lettered.
        runs: How many times it ran in this process.
        retry_delays: The delay the worker chose before each retry (not waited for).
    """

    task_id: str
    task: str
    state: OutcomeState = "failed"
    result: Any = None
    error: BaseException | None = None
    failure: Failure | None = None
    runs: int = 0
    retry_delays: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Dispatched:
    """One dispatch, as the caller made it (arguments as given, not round-tripped).

    Attributes:
        task_id: The id `dispatch()` returned.
        task: The task's name (``module:qualname``).
        queue: The queue it went to.
        args: Positional arguments of a function task (empty for a class task).
        kwargs: Keyword arguments of a function task; the public attributes of a class task.
        delay: Seconds it was asked to wait before running.
        instance: The task object that was dispatched.
    """

    task_id: str
    task: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    delay: float
    instance: BaseTask[Any]


def task_name(task: TaskRef) -> str:
    """The registered name of `task` (a task function, a task class or a name)."""
    if isinstance(task, str):
        return task
    if isinstance(task, TaskFunction):
        return task.name
    if isinstance(task, type) and issubclass(task, BaseTask) and task._task_name:
        return task._task_name
    raise TypeError(
        f"expected a task function, a task class or a task name, got {task!r}: pass the "
        "function decorated with @task (not a call of it) or the Task subclass"
    )


def _name_of(task: BaseTask[Any]) -> str:
    return task.function.name if isinstance(task, FunctionTask) else type(task)._task_name


class _DispatchRecorder(Middleware):
    """Dispatch-side: remembers every dispatch while the queues are active."""

    def __init__(self, log: list[Dispatched]) -> None:
        self.log = log

    def before_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        # Recorded before the driver call: in eager mode that call runs the task and may
        # raise its error, and the dispatch still happened.
        if isinstance(task, FunctionTask):
            args, kwargs = tuple(task.args), dict(task.kwargs)
        else:
            args, kwargs = (), task._wire_state()
        self.log.append(
            Dispatched(
                message.task_id, _name_of(task), message.queue, args, kwargs, message.delay, task
            )
        )


class _OutcomeRecorder(Middleware):
    """Worker-side: what became of each task, and retries made due at once."""

    def __init__(self, driver: MemoryDriver, *, fast_retries: bool, max_runs: int) -> None:
        self.driver = driver
        self.fast_retries = fast_retries
        self.max_runs = max_runs
        self.outcomes: dict[str, TaskOutcome] = {}
        self.runs = 0
        self.worker: Worker | None = None

    def _outcome(self, job: Job) -> TaskOutcome:
        outcome = self.outcomes.get(job.task_id)
        if outcome is None:
            outcome = self.outcomes[job.task_id] = TaskOutcome(job.task_id, job.task_name)
        return outcome

    def before_process(self, job: Job) -> None:
        self._outcome(job).runs += 1
        self.runs += 1
        if self.runs >= self.max_runs and self.worker is not None:
            self.worker.request_stop()

    def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
        outcome = self._outcome(job)
        if exception is None:
            outcome.state, outcome.result = "succeeded", result
        else:
            outcome.state, outcome.error = "failed", exception

    def after_retry(self, job: Job, exception: BaseException, delay: float) -> None:
        self._outcome(job).retry_delays.append(delay)
        if self.fast_retries:
            self.driver.make_due(job.queue)  # the retry runs now, in this same pass

    def after_dead_letter(self, job: Job, failure: Failure) -> None:
        outcome = self._outcome(job)
        outcome.state, outcome.failure = "dead_lettered", failure

    def after_cancel(self, job: Job) -> None:
        self._outcome(job).state = "cancelled"


class MemoryQueues:
    """The in-memory queues dispatch uses inside `memory_queues()`, and ways to look at them.

    Attributes:
        driver: The in-memory driver (see its `messages`, `queued`, `dead_letters`, `join`).
        dispatched: Every dispatch made since the queues became active, in order.
        outcomes: Every outcome of the tasks run by `run_until_idle` (and eager dispatches).
        eager: Whether dispatch runs the task before returning.
        propagate: In eager mode, whether a task that fails for good raises its error from
            ``dispatch()``.
    """

    def __init__(self, namespace: str, *, eager: bool = False, propagate: bool = True) -> None:
        self.namespace = namespace
        self.driver = MemoryDriver(namespace=namespace)
        self.dispatched: list[Dispatched] = []
        self.outcomes: list[TaskOutcome] = []
        self.eager = eager
        self.propagate = propagate
        self.middleware: list[Middleware] = []
        """Worker middleware added to the runs (yours, e.g. to test a middleware)."""

    # -- running ---------------------------------------------------------------------------
    async def run_until_idle(
        self,
        *,
        delayed: bool = True,
        concurrency: int = 1,
        max_runs: int = MAX_RUNS,
    ) -> list[TaskOutcome]:
        """Run queued tasks in this process with a real `Worker` until nothing is left.

        Tasks that the running tasks dispatch run too. Retries happen at once (the delay
        the worker chose is in `TaskOutcome.retry_delays`), up to each task's
        ``max_attempts`` and as its ``should_retry`` allows; then it is dead-lettered.

        Args:
            delayed: Also run tasks dispatched with a delay, and retries, without waiting
                for their delay; False leaves them queued (their outcome is ``failed``).
            concurrency: Tasks run at once (1: one after the other, in queue order).
            max_runs: Stop after this many runs and raise (a task that keeps dispatching
                itself).

        Returns:
            The outcome of every task that ran (or was dead-lettered) in this call, in the
            order they first ran.

        Raises:
            RuntimeError: still busy after `max_runs` runs.
        """
        recorder = _OutcomeRecorder(self.driver, fast_retries=delayed, max_runs=max_runs)
        token = _running_eagerly.set(True)  # a dispatch from a running task: run by this loop
        try:
            while True:
                if delayed:
                    self.driver.make_due()
                ready = self.driver.messages(state="ready")
                if not ready:
                    break
                if recorder.runs >= max_runs:
                    raise RuntimeError(
                        f"tasks still queued after {max_runs} runs (a task that dispatches "
                        f"itself?): {sorted({m.queue for m in ready})}"
                    )
                worker = Worker(
                    self.driver,
                    queues=sorted({m.queue for m in ready}),
                    concurrency=concurrency,
                    burst=True,
                    poll_wait=0.005,  # a burst worker's last empty fetches: keep them short
                    install_signal_handlers=False,
                    middleware=[recorder, *self.middleware],
                )
                recorder.worker = worker
                await worker.run()
        finally:
            _running_eagerly.reset(token)
        outcomes = list(recorder.outcomes.values())
        self.outcomes.extend(outcomes)
        return outcomes

    async def _run_eagerly(self) -> None:
        if _running_eagerly.get():
            return  # dispatched by a task this process runs now: the running loop takes it
        outcomes = await self.run_until_idle()
        if not self.propagate:
            return
        for outcome in outcomes:
            if outcome.state == "dead_lettered":
                if outcome.error is not None:
                    raise outcome.error
                failure = outcome.failure
                assert failure is not None
                raise TaskFailedError(outcome.task_id, failure.exception_type, failure.message)

    # -- looking -----------------------------------------------------------------------------
    def dispatches(self, task: TaskRef | None = None) -> list[Dispatched]:
        """The dispatches made (of `task`, or of every task), in order."""
        if task is None:
            return list(self.dispatched)
        name = task_name(task)
        return [d for d in self.dispatched if d.task == name]

    def assert_dispatched(
        self,
        task: TaskRef,
        *,
        times: int | None = None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
    ) -> list[Dispatched]:
        """Assert that `task` was dispatched (with these arguments, on this queue).

        Args:
            task: The task function, task class or task name.
            times: Exactly this many matching dispatches (None: at least one).
            args: The positional arguments, exactly as passed (function tasks).
            kwargs: The keyword arguments, exactly as passed (function tasks), or the
                public attributes (class tasks).
            queue: The queue it went to.

        Returns:
            The matching dispatches.

        Raises:
            AssertionError: no (or not `times`) matching dispatches; the message lists what
                was dispatched instead.
        """
        __tracebackhide__ = True  # pytest shows the test's line and this message, not this code
        name = task_name(task)
        matching = [
            d
            for d in self.dispatches(name)
            if (args is None or d.args == tuple(args))
            and (kwargs is None or d.kwargs == kwargs)
            and (queue is None or d.queue == queue)
        ]
        if (times is None and matching) or len(matching) == times:
            return matching
        wanted = ", ".join(
            f"{label}={value!r}"
            for label, value in (("args", args), ("kwargs", kwargs), ("queue", queue))
            if value is not None
        )
        expected = "at least once" if times is None else f"{times} time(s)"
        raise AssertionError(
            f"expected {name}{f' ({wanted})' if wanted else ''} dispatched {expected}, "
            f"found {len(matching)}; dispatched: {self._summary()}"
        )

    def assert_not_dispatched(self, task: TaskRef) -> None:
        """Assert that `task` was never dispatched."""
        __tracebackhide__ = True
        self.assert_dispatched(task, times=0)

    def _summary(self, limit: int = 20) -> str:
        if not self.dispatched:
            return "nothing"
        shown = [
            f"{d.task}(args={d.args!r}, kwargs={d.kwargs!r}) on {d.queue!r}"
            for d in self.dispatched[:limit]
        ]
        more = len(self.dispatched) - limit
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


@contextlib.contextmanager
def memory_queues(
    *, eager: bool = False, propagate: bool = True, settings: dict[str, Any] | None = None
) -> Iterator[MemoryQueues]:
    """Send every dispatch inside the block to fresh in-memory queues; restore after.

    The configuration in effect is kept (task defaults, worker settings) except the driver,
    which becomes an in-memory one of its own (tasks that name their own driver, with
    ``driver=...`` or ``_driver_override``, keep it). A configuration set inside the block,
    by ``init()`` in an application's start-up for instance, keeps that driver too.

    Args:
        eager: ``dispatch()`` runs the task (and what it dispatches) before returning,
            retries included, without sleeping through their delays.
        propagate: In eager mode, a task that fails for good raises its error from
            ``dispatch()`` (its last exception; `TaskFailedError` if it never ran).
        settings: More settings for the block, as for ``set_global_config``.

    Example:
        ```python
        with memory_queues() as queues:
            asyncio.run(send_welcome("ada@example.com").dispatch())
            queues.assert_dispatched(send_welcome, times=1)
        ```
    """
    namespace = f"asynctasq-test-{uuid.uuid4().hex}"
    queues = MemoryQueues(namespace, eager=eager, propagate=propagate)
    saved = config_module.configured()  # restored as it was, unconfigured (None) included
    recorder = _DispatchRecorder(queues.dispatched)
    queues_settings = {"driver": "memory", "memory": {"namespace": namespace}}
    set_global_config(**(settings or {}), **queues_settings)
    add_middleware(recorder)
    if eager:
        _memory_inspect.enqueue_hooks[namespace] = queues._run_eagerly
    try:
        # An application's start-up that calls init() inside the block (a FastAPI lifespan
        # run by TestClient) keeps dispatching here, not to the broker it names.
        with config_module.pin(queues_settings, "memory_queues()"):
            yield queues
    finally:
        _memory_inspect.enqueue_hooks.pop(namespace, None)
        remove_middleware(recorder)
        config_module.use_config(saved)
        queues.driver.clear()
        forget_namespace(namespace)


__all__ = [
    "MAX_RUNS",
    "Dispatched",
    "MemoryQueues",
    "OutcomeState",
    "TaskOutcome",
    "TaskRef",
    "memory_queues",
    "task_name",
]
