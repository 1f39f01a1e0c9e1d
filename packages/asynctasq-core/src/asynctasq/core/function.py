"""Function-based tasks: the `@task` decorator.

``@task`` turns a function into a `TaskFunction`; calling it with the function's arguments
checks them against the signature (a wrong argument fails at the call, before anything is
queued) and returns a `FunctionTask` with the chain methods and ``dispatch()``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from asynctasq.config import RetryStrategy
from asynctasq.core import registry
from asynctasq.core.celery_habits import missing_method, unknown_options
from asynctasq.core.limits import LimitKey, Rate, check_limit_argument
from asynctasq.core.options import (
    OnExpiry,
    UniqueKey,
    check_driver,
    check_option,
    check_settings,
    check_unique_argument,
)
from asynctasq.core.retry_filters import ExceptionTypes, RetryFilter, retry_filter_of
from asynctasq.core.task import BaseTask, Execution
from asynctasq.drivers.base import Driver

if TYPE_CHECKING:
    from asynctasq.schedules.when import When
    from asynctasq.workflows.steps import Step

P = ParamSpec("P")
R = TypeVar("R")

_MAX_SHAPES = 64
"""Call shapes remembered per task function (a function taking ``**kwargs`` has endless)."""


class FunctionTask(BaseTask[R]):
    """One call of a task function, ready to be configured and dispatched."""

    _abstract = True

    def __init__(
        self, function: TaskFunction[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        super().__init__()
        self._function = function
        self._args = args
        self._kwargs = kwargs
        self._class_options = function.options  # type: ignore[misc]

    @property
    def function(self) -> TaskFunction[..., R]:
        """The task function this call belongs to."""
        return self._function

    @property
    def args(self) -> tuple[Any, ...]:
        return self._args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._kwargs

    @property
    def execution(self) -> Execution:
        return self._function.execution

    def _driver(self) -> str | Driver | None:
        # An instance override is set only by the scheduler (its worker's driver).
        override = self._driver_override
        return self._function.driver if override is None else override

    def _invoke(self) -> Any:
        return self._function.fn(*self._args, **self._kwargs)

    def _retry_selection(self) -> RetryFilter | None:
        return self._function.retry_filter

    def __repr__(self) -> str:
        return f"<task {self._function.name} id={self._task_id}>"

    def _display_name(self) -> str:
        return self._function.name

    def _call_name(self) -> str:
        return _name_of(self._function.fn)


class TaskFunction(Generic[P, R]):
    """A function registered as a task. Call it to get a dispatchable `FunctionTask`."""

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        options: dict[str, Any],
        driver: str | Driver | None,
        process: bool,
        retry_filter: RetryFilter | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")
        self.fn = fn
        self.options = options
        self.driver = driver
        self.process = process
        self.retry_filter = retry_filter
        """``retry_on`` / ``dont_retry_on``: the exceptions a failed run is retried after
        (None: every exception)."""
        self.is_async = inspect.iscoroutinefunction(fn)
        self.execution: Execution = (
            "process" if process else ("async" if self.is_async else "thread")
        )
        self.signature = inspect.signature(fn)
        """The function's signature: calls are checked against it."""
        self.positional_names = tuple(
            p.name
            for p in self.signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        """Names of the parameters that can be passed by position, in order (they name
        positional arguments in serialization errors)."""
        # Call shapes that bound: (number of positional arguments, keyword names...).
        self._fitting_shapes: set[tuple[Any, ...]] = set()
        functools.update_wrapper(self, fn)
        self.name = registry.register(self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> FunctionTask[R]:
        # Whether arguments bind depends only on how many are positional and which names
        # are keywords, so `Signature.bind` runs once per shape of call: calling a task is
        # on the dispatch hot path, and bind costs several microseconds.
        shape = (len(args), *kwargs)
        if shape not in self._fitting_shapes:
            try:
                self.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self.name}(): {exc}") from None
            if len(self._fitting_shapes) < _MAX_SHAPES:  # bounded for **kwargs functions
                self._fitting_shapes.add(shape)
        return FunctionTask(self, args, kwargs)

    def step(self, *args: Any, **kwargs: Any) -> Step[R]:
        """This task as a workflow step that receives the previous step's result (a chord's
        callback: the list of the group's results) as its first positional argument,
        followed by `args` and `kwargs`: ``chain(fetch(url), parse.step(strict=True))``.

        Raises:
            TypeError: the arguments do not fit the signature after that first one.
        """
        from asynctasq.workflows.steps import Step

        return Step(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<task function {self.name}>"

    if not TYPE_CHECKING:  # type checkers keep flagging unknown attributes

        def __getattr__(self, attribute: str) -> Any:
            # Only for attributes not found: calls and dispatches never come here.
            fn = self.__dict__.get("fn")
            name = "task" if fn is None else _name_of(fn)
            hint = missing_method(name, attribute)
            if hint is None:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {attribute!r}"
                )
            raise AttributeError(f"{name}.{attribute}() is Celery's; here: {hint}")

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Pickled by name, like a plain function, so process pools can pass it around.
        return str(getattr(self, "__qualname__"))  # noqa: B009 - set by update_wrapper


class _TaskDecorator(Protocol):
    """What ``task(...)`` with settings returns: a decorator that keeps the function's
    parameters and return type (so ``dispatch()`` gives a typed ``TaskId``)."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> TaskFunction[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...


@overload
def task(fn: Callable[P, Awaitable[R]], /) -> TaskFunction[P, R]: ...
@overload
def task(fn: Callable[P, R], /) -> TaskFunction[P, R]: ...
@overload
def task(
    *,
    queue: str | None = None,
    max_attempts: int | None = None,
    retry_delay: float | None = None,
    retry_strategy: RetryStrategy | None = None,
    retry_max_delay: float | None = None,
    retry_jitter: bool | None = None,
    retry_on: ExceptionTypes | None = None,
    dont_retry_on: ExceptionTypes | None = None,
    timeout: float | None = None,
    visibility_timeout: float | None = None,
    driver: str | Driver | None = None,
    process: bool = False,
    keep_result: bool | float = False,
    track: bool | float | None = None,
    expires: float | timedelta | datetime | None = None,
    on_expiry: OnExpiry | None = None,
    unique: bool = False,
    unique_key: UniqueKey | None = None,
    unique_for: float | None = None,
    concurrency_limit: int | None = None,
    rate_limit: str | Rate | None = None,
    limit_key: LimitKey | None = None,
    limit_lease: float | None = None,
    priority: int | None = None,
    schedule: When | None = None,
) -> _TaskDecorator: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    queue: str | None = None,
    max_attempts: int | None = None,
    retry_delay: float | None = None,
    retry_strategy: RetryStrategy | None = None,
    retry_max_delay: float | None = None,
    retry_jitter: bool | None = None,
    retry_on: ExceptionTypes | None = None,
    dont_retry_on: ExceptionTypes | None = None,
    timeout: float | None = None,
    visibility_timeout: float | None = None,
    driver: str | Driver | None = None,
    process: bool = False,
    keep_result: bool | float = False,
    track: bool | float | None = None,
    expires: float | timedelta | datetime | None = None,
    on_expiry: OnExpiry | None = None,
    unique: bool = False,
    unique_key: UniqueKey | None = None,
    unique_for: float | None = None,
    concurrency_limit: int | None = None,
    rate_limit: str | Rate | None = None,
    limit_key: LimitKey | None = None,
    limit_lease: float | None = None,
    priority: int | None = None,
    schedule: When | None = None,
    **unknown: Any,
) -> Any:
    """Make a function a task, bare (``@task``) or with settings (``@task(queue='q')``).

    Args:
        queue: Queue name (default: the configured default queue, ``'default'``).
        max_attempts: Most runs in total (0 and 1: run once). Default 3.
        retry_delay: Seconds before the first retry. Alone (no ``retry_strategy``), the
            wait before every retry; with ``retry_strategy="exponential"``, the base that
            doubles. Default: ``task_defaults`` (exponential from 60 s).
        retry_strategy: ``"fixed"`` (``retry_delay`` every time) or ``"exponential"``
            (``retry_delay``, twice that, four times, ... up to ``retry_max_delay``).
        retry_max_delay: Longest exponential wait (default one hour).
        retry_jitter: Randomize exponential waits within their upper half, so tasks that
            failed together do not retry together (default True).
        retry_on: Retry only after these exceptions (a class or a tuple; subclasses
            count); any other fails the task for good at once, dead-lettered with its error.
        dont_retry_on: Never retry after these (wins over ``retry_on``). A `PermanentError`
            never retries either way.
        timeout: Seconds a run may take before it is stopped (None: no limit).
        visibility_timeout: Seconds before a task whose worker died is handed out again.
        driver: A driver name or instance to use instead of the configured driver.
        process: Run in a child process (CPU-bound work).
        keep_result: Keep the return value so callers can await it
            (``await (await t.dispatch()).result()``): True for an hour, or the seconds to
            keep it. Needs a driver that can store results.
        track: Keep a status record (``await task_id.status()``, ``asynctasq status``):
            True, or the seconds to keep it after the task ends. None: the configured
            default (``task_defaults.track``). Needs a driver that can track status.
        expires: Do not start the task after this: seconds after dispatch, or an aware
            datetime. A worker that takes it later dead-letters it (`TaskExpiredError`).
        on_expiry: ``"dead_letter"`` (default) or ``"drop"`` (acknowledge it, keep nothing).
        unique: While one dispatch with the same arguments is queued or running, another
            queues nothing and returns the first one's id. Needs a driver that holds claims.
        unique_key: What makes two dispatches the same (implies ``unique``): a function of
            the task's arguments returning a str or int (None: not unique this time), or
            the name of one argument. Default: all the arguments.
        unique_for: Seconds the key stays claimed at most, counted from when the task is
            due (default one hour); finishing (success or dead letter) releases it sooner.
        concurrency_limit: At most this many runs at once across all workers (per
            ``limit_key`` when given); a run that finds the limit full waits, uncounted as
            an attempt. Needs a driver that holds claims. See the flow-control guide.
        rate_limit: At most this many starts per period across all workers, evenly spaced:
            ``"100/m"``, ``"5/s"``, ``"1000/h"``, ``"10/15m"`` (per ``limit_key`` when given).
        limit_key: What the limits are counted per: a function of the task's arguments
            returning a str or int (None: this call is not limited), or an argument's name.
        limit_lease: Seconds a concurrency slot stays taken after its worker died (default
            30); a live worker renews it every third of that.
        priority: 0 (the default) to 9; within its queue a ready task of a higher priority
            starts before lower ones (equal priorities: oldest first). Not on SQS.
        schedule: Dispatch the task (with no arguments) at every tick of ``cron(...)`` or
            ``every(...)``, from workers run with ``--schedules``; once per tick however
            many run. See `asynctasq.schedule` for tasks that take arguments.

    Raises:
        ValueError: a setting has an unusable value (named in the message).
    """
    if unknown:
        known = [p for p in inspect.signature(task).parameters if p not in ("fn", "unknown")]
        raise TypeError(unknown_options(unknown, known, "@task"))
    settings = {
        "queue": queue,
        "max_attempts": max_attempts,
        "retry_delay": retry_delay,
        "retry_strategy": retry_strategy,
        "retry_max_delay": retry_max_delay,
        "retry_jitter": retry_jitter,
        "timeout": timeout,
        "visibility_timeout": visibility_timeout,
        "keep_result": keep_result or None,
        "track": track,
        "expires": expires,
        "on_expiry": on_expiry,
        "unique": unique or None,
        "unique_key": unique_key,
        "unique_for": unique_for,
        "concurrency_limit": concurrency_limit,
        "rate_limit": rate_limit,
        "limit_key": limit_key,
        "limit_lease": limit_lease,
        "priority": priority,
    }
    options = {k: check_option(k, v) for k, v in settings.items() if v is not None}
    check_settings(options, "@task")
    retry_filter = retry_filter_of(retry_on, dont_retry_on)
    check_driver(driver)
    if not isinstance(process, bool):
        raise TypeError(f"process must be True or False, got {process!r}")

    def wrap(function: Callable[..., Any]) -> TaskFunction[..., Any]:
        if isinstance(function, TaskFunction):
            raise TypeError(f"{function.name} is already a task")
        made = TaskFunction(
            function, options=options, driver=driver, process=process, retry_filter=retry_filter
        )
        if "unique_key" in options:
            check_unique_argument(made.signature, options["unique_key"], made.name)
        if "limit_key" in options:
            check_limit_argument(made.signature.parameters, options["limit_key"], made.name)
        if schedule is not None:
            from asynctasq.schedules.registry import schedule_function

            schedule_function(made, schedule)
        return made

    if fn is not None:
        return wrap(fn)
    return wrap


def _name_of(fn: Callable[..., Any]) -> str:
    """What the caller calls the task function by, for error messages."""
    return str(getattr(fn, "__name__", "task"))


__all__ = ["FunctionTask", "TaskFunction", "task"]
