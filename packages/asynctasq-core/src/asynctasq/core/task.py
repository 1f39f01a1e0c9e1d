"""Class-based tasks: `Task[T]`, `SyncTask[T]`, `AsyncProcessTask[T]`, `SyncProcessTask[T]`.

A task's configuration lives in class attributes (``queue``, ``max_retries``, ``retry_delay``,
``retry_strategy``, ``retry_max_delay``, ``retry_jitter``, ``retry_on``, ``dont_retry_on``,
``timeout``, ``visibility_timeout``, ``keep_result``, ``_driver_override``) and can be
overridden per dispatch with the chain methods (``on_queue``, ``delay``, ``retry_after``,
``retry``, ``max_attempts``, ``timeout``, ``visibility_timeout``). ``timeout`` and friends are
both: the class value when read from the class, a chain method when called on an instance.

An instance configured with a chain method and then dropped without ``dispatch()`` warns
(`RuntimeWarning`, like a coroutine that was never awaited): ``send_email(...).delay(5)`` on
its own queues nothing, whatever Celery taught.
"""

from __future__ import annotations

import sys
import warnings
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Self, TypeVar

from asynctasq.config import RetryStrategy
from asynctasq.core import registry
from asynctasq.core.limits import LimitKey, Rate
from asynctasq.core.options import (
    OnExpiry,
    UniqueKey,
    check_driver,
    check_instant,
    check_option,
    check_retry_settings,
    check_settings,
)
from asynctasq.core.retry_filters import ExceptionTypes, RetryFilter, retry_filter_of
from asynctasq.drivers.base import Driver

if TYPE_CHECKING:
    from asynctasq.core.results import TaskId

T = TypeVar("T")
Execution = Literal["async", "thread", "process"]

# Class attribute spellings -> option names.
_CLASS_OPTIONS = {
    "queue": "queue",
    "max_retries": "max_attempts",
    "max_attempts": "max_attempts",
    "retry_delay": "retry_delay",
    "retry_strategy": "retry_strategy",
    "retry_max_delay": "retry_max_delay",
    "retry_jitter": "retry_jitter",
    "timeout": "timeout",
    "visibility_timeout": "visibility_timeout",
    "keep_result": "keep_result",
    "track": "track",
    "expires": "expires",
    "on_expiry": "on_expiry",
    "unique": "unique",
    "unique_key": "unique_key",
    "unique_for": "unique_for",
    "concurrency_limit": "concurrency_limit",
    "rate_limit": "rate_limit",
    "limit_key": "limit_key",
    "limit_lease": "limit_lease",
    "priority": "priority",
}
_CHAINABLE = ("timeout", "visibility_timeout", "max_attempts", "expires", "priority")
# Constructor keywords that set options instead of becoming attributes.
_OPTION_KWARGS = {**_CLASS_OPTIONS, "delay": "delay"}


class _BoundOption:
    """A chain method that also reads as the value it sets (``task.timeout == 30``)."""

    __slots__ = ("_name", "_task")

    def __init__(self, task: BaseTask[Any], name: str) -> None:
        self._task = task
        self._name = name

    def __call__(self, value: Any) -> Any:
        return self._task._set_option(self._name, value)._chained(self._name)

    @property
    def value(self) -> Any:
        return self._task._option(self._name)

    def __eq__(self, other: object) -> bool:
        return bool(self.value == other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


class _ChainOption:
    """On the class: the configured value. On an instance: a `_BoundOption` chain method."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: BaseTask[Any] | None, owner: type[BaseTask[Any]]) -> Any:
        if instance is None:
            return owner._class_options.get(self.name)
        return _BoundOption(instance, self.name)


class BaseTask(Generic[T]):
    """What every task shares: configuration, chain methods, metadata, dispatch and hooks."""

    _execution: ClassVar[Execution] = "async"
    _abstract: ClassVar[bool] = True
    _class_options: ClassVar[dict[str, Any]] = {}
    _task_name: ClassVar[str] = ""

    queue: str | None = None
    max_retries: int | None = None
    retry_delay: float | None = None
    """Seconds before the first retry; with no ``retry_strategy``, before every retry."""
    retry_strategy: RetryStrategy | None = None
    """``"fixed"`` or ``"exponential"`` (from ``retry_delay``); None: see the retries guide."""
    retry_max_delay: float | None = None
    """Longest exponential wait (default ``task_defaults.retry_max_delay``, one hour)."""
    retry_jitter: bool | None = None
    """Randomize exponential waits (default ``task_defaults.retry_jitter``, True)."""
    retry_on: ClassVar[ExceptionTypes | None] = None
    """Retry only after these exceptions; any other fails the task for good at once."""
    dont_retry_on: ClassVar[ExceptionTypes | None] = None
    """Never retry after these exceptions (wins over ``retry_on``)."""
    _retry_filter: ClassVar[RetryFilter | None] = None
    keep_result: bool | float = False
    """Keep the return value for awaiting (True: an hour; or seconds to keep it)."""
    track: bool | float | None = None
    """Keep a status record (`TaskId.status`): True, or seconds to keep it after the task
    ends; None: the configured default (``task_defaults.track``)."""
    on_expiry: OnExpiry | None = None
    """What a worker does with a task taken after its expiry: ``"dead_letter"`` or ``"drop"``."""
    unique: bool = False
    """Queue nothing while a dispatch with the same arguments is queued or running."""
    unique_key: UniqueKey | None = None
    """What makes two dispatches the same: an attribute name, or a method returning the key."""
    unique_for: float | None = None
    """Seconds a unique key stays claimed at most, from when the task is due (default 1 h)."""
    concurrency_limit: int | None = None
    """At most this many runs at once across all workers (per ``limit_key``)."""
    rate_limit: str | Rate | None = None
    """At most this many starts per period across all workers: ``"100/m"``, ``"5/s"``."""
    limit_key: LimitKey | None = None
    """What the limits count per: an attribute name, or a method returning the key."""
    limit_lease: float | None = None
    """Seconds a concurrency slot stays taken after its worker died (default 30)."""
    _driver_override: str | Driver | None = None

    if TYPE_CHECKING:
        # Both a class attribute (``timeout = 30``) and a chain method (``.timeout(30)``).
        timeout: Any
        visibility_timeout: Any
        max_attempts: Any
        expires: Any
        priority: Any
        """0 (default) to 9: higher starts first within its queue. A class attribute
        (``priority = 5``) and a chain method (``.priority(5)``)."""
    else:
        timeout = _ChainOption("timeout")
        visibility_timeout = _ChainOption("visibility_timeout")
        max_attempts = _ChainOption("max_attempts")
        expires = _ChainOption("expires")
        priority = _ChainOption("priority")

    # Metadata, set by the framework at dispatch and in the worker.
    _task_id: str | None = None
    _tracked: float = 0.0  # seconds its status is kept after it ends (set at dispatch)
    _attempts: int = 0
    _dispatched_at: datetime | None = None
    # Set by the first chain method until dispatch (see `_Unsent`); an instance built to
    # call handle() directly, or by the worker, never has one.
    _unsent: _Unsent | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        options = dict(getattr(cls, "_class_options", {}))
        for attr, option in _CLASS_OPTIONS.items():
            if attr not in cls.__dict__:
                continue
            value = cls.__dict__[attr]
            if isinstance(value, _ChainOption):
                continue
            if value is not None or option == "timeout":
                try:
                    options[option] = check_option(option, value) if value is not None else None
                except ValueError as exc:
                    raise ValueError(f"{cls.__qualname__}.{attr}: {exc}") from None
            if attr in _CHAINABLE:
                delattr(cls, attr)  # the base class's chain descriptor serves it from now on
        if "_driver_override" in cls.__dict__:
            check_driver(cls.__dict__["_driver_override"])
        check_settings(options, cls.__qualname__)
        cls._class_options = options
        if "retry_on" in cls.__dict__ or "dont_retry_on" in cls.__dict__:
            try:
                cls._retry_filter = retry_filter_of(cls.retry_on, cls.dont_retry_on)
            except ValueError as exc:
                raise ValueError(f"{cls.__qualname__}: {exc}") from None
        cls._abstract = bool(cls.__dict__.get("_abstract", False))
        if not cls._abstract:
            cls._task_name = registry.register(cls)
            if "schedule" in cls.__dict__:
                _declare_schedule(cls, cls.__dict__["schedule"])

    def __init__(self, **kwargs: Any) -> None:
        self._options: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in _OPTION_KWARGS:
                self._set_option(_OPTION_KWARGS[key], value)
            else:
                setattr(self, key, value)

    # -- options ---------------------------------------------------------------------------
    def _overrides(self) -> dict[str, Any]:
        try:
            return self._options
        except AttributeError:  # a subclass __init__ that did not call super().__init__()
            self._options = {}
            return self._options

    def _set_option(self, name: str, value: Any) -> Self:
        self._overrides()[name] = check_option(name, value)
        return self

    def _option(self, name: str) -> Any:
        overrides = self._overrides()
        if name in overrides:
            return overrides[name]
        return self._class_options.get(name)

    def _settings(self) -> dict[str, Any]:
        """Settings this task sets itself (class values overlaid by chain overrides)."""
        return {**self._class_options, **self._overrides()}

    def _driver(self) -> str | Driver | None:
        return self._driver_override

    def on_queue(self, queue: str) -> Self:
        """Send this dispatch to `queue`."""
        return self._set_option("queue", queue)._chained("on_queue")

    def delay(self, seconds: float | timedelta | datetime) -> Self:
        """Run no earlier than `seconds` from now (0 = now), or than a moment (an aware
        `datetime`; one in the past runs now). Queues nothing by itself."""
        return self._set_option("delay", seconds)._chained("delay")

    def at(self, when: datetime) -> Self:
        """Run no earlier than `when`, a timezone-aware `datetime` (one in the past runs
        now). Queues nothing by itself.

        Raises:
            ValueError: `when` is naive (no timezone) or not a datetime.
        """
        return self._set_option("delay", check_instant("at", when))._chained("at")

    def retry_after(self, seconds: float) -> Self:
        """Wait `seconds` between a failed run and the next."""
        return self._set_option("retry_delay", seconds)._chained("retry_after")

    def retry(
        self,
        *,
        strategy: RetryStrategy | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        jitter: bool | None = None,
    ) -> Self:
        """This dispatch's retry policy; what is not given keeps the task's own value (or
        the configured default). Queues nothing by itself.

        ``.retry(strategy="exponential", delay=5, max_delay=300)`` waits 5 s, 10 s, 20 s,
        ... at most 300 s; ``.retry(strategy="fixed", delay=30)`` waits 30 s every time.

        Args:
            strategy: ``"fixed"`` or ``"exponential"``.
            delay: Seconds before the first retry (every retry with ``"fixed"``).
            max_delay: Longest exponential wait.
            jitter: Randomize exponential waits (within their upper half).

        Raises:
            ValueError: a value is unusable, or the values contradict each other.
            TypeError: no setting was given.
        """
        given = {
            "retry_strategy": strategy,
            "retry_delay": delay,
            "retry_max_delay": max_delay,
            "retry_jitter": jitter,
        }
        options = {k: check_option(k, v) for k, v in given.items() if v is not None}
        if not options:
            raise TypeError(
                ".retry() sets this dispatch's retry policy and needs at least one of "
                "strategy=, delay=, max_delay=, jitter=; to retry a run from inside a task, "
                "raise an exception"
            )
        check_retry_settings(options, ".retry()")
        self._overrides().update(options)
        return self._chained("retry")

    def _chained(self, method: str) -> Self:
        unsent = self._unsent
        if unsent is None:
            self._unsent = _Unsent(self._display_name(), method)
        else:
            unsent.method = method
        return self

    # -- dispatch --------------------------------------------------------------------------
    async def dispatch(self, *, connection: Any = None) -> TaskId[T]:
        """Queue this task; return its id (a UUID string; with ``keep_result``,
        ``await task_id.result()`` waits for what the task returns).

        Args:
            connection: A database connection of the configured SQL driver; the task is then
                queued inside that connection's transaction (it exists if and only if the
                transaction commits).

        Raises:
            SerializationError: an argument cannot be serialized (named in the message).
        """
        # Dispatching is a layer above tasks (it imports this module), so it is imported
        # on use, like the other layers a task's methods reach below. It is in sys.modules
        # by then (the package imports it), and a single dispatch waits for the broker.
        from asynctasq.core.dispatch import dispatch

        return await dispatch(self, connection=connection)

    def dispatch_sync(self, *, timeout: float | None = None) -> TaskId[T]:
        """Queue this task from sync code (Flask, Django views, scripts); return its id.

        Safe from many threads at once; connections are kept on one background event loop
        (see `asynctasq.core.sync`). From async code, ``await dispatch()`` instead.

        Raises:
            RuntimeError: called from a running event loop.
            TimeoutError: not queued within `timeout` seconds (it may still be queued).
        """
        from asynctasq.core.sync import dispatch_sync

        return dispatch_sync(self, timeout=timeout)

    # -- what the worker runs --------------------------------------------------------------
    @property
    def execution(self) -> Execution:
        """Where the worker runs it: the event loop, a thread, or a child process."""
        return self._execution

    def _invoke(self) -> Any:
        """Run the task body: a coroutine for async tasks, the result for sync ones."""
        raise NotImplementedError

    def _wire_state(self) -> dict[str, Any]:
        """The instance state that travels: public attributes. Private ones the task set
        itself (``self._x`` in ``__init__``) do not, and the worker does not run
        ``__init__``: a warning names them, once per class."""
        state: dict[str, Any] = {}
        left: list[str] = []
        for key, value in vars(self).items():
            if not key.startswith("_"):
                state[key] = value
            elif key not in _FRAMEWORK_STATE and not key.startswith("__"):
                left.append(key)  # Python's own (__orig_class__) are no state
        if left and type(self) not in _warned:
            _warned.add(type(self))
            _warn_left_behind(type(self), left)
        return state

    # -- while it runs ------------------------------------------------------------------------
    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far this run is (0.0 to 1.0), for `status()`, the CLI and events.

        Rate-limited by the worker: call it as often as you like. See `current_task`.
        """
        from asynctasq.lifecycle.context import current_task

        await current_task().progress(fraction, message)

    @property
    def cancel_requested(self) -> bool:
        """Whether this run should stop: cancelled, past its timeout, or given back at
        shutdown (poll it in long sync tasks: a thread cannot be stopped from outside)."""
        from asynctasq.lifecycle.context import current_task

        return current_task().cancel_requested

    # -- hooks -----------------------------------------------------------------------------
    async def failed(self, exception: Exception) -> None:
        """Called once when the task failed for good (after its last attempt)."""

    def should_retry(self, exception: Exception) -> bool:
        """Whether a failed run may be retried (attempts permitting).

        Default: what ``retry_on`` / ``dont_retry_on`` select (every exception when neither
        is set). An override decides alone; ``super().should_retry(exception)`` applies the
        filters too. A `PermanentError` is never retried, whatever this says.
        """
        selection = self._retry_selection()
        return selection is None or selection.selects(exception)

    def _retry_selection(self) -> RetryFilter | None:
        """The task's ``retry_on`` / ``dont_retry_on``; None when it sets neither."""
        return type(self)._retry_filter

    if not TYPE_CHECKING:
        # Hidden from type checkers, which already reject ``await task(...)``: at run time
        # Python's own error ("can't be used in 'await' expression") says nothing of how a
        # task is queued.
        def __await__(self) -> Any:
            name = self._call_name()
            raise TypeError(
                f"task {self._display_name()} was awaited, but a task is not a coroutine: "
                f"`await {name}(...).dispatch()` queues it"
            )

    def _call_name(self) -> str:
        """What the caller wrote to build this task, for error messages."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} id={self._task_id}>"

    def _display_name(self) -> str:
        return type(self)._task_name or type(self).__qualname__

    def __getstate__(self) -> object:
        # Pickled or copied (to a process, a queue of its own): whoever holds the copy decides
        # what happens to it, so neither copy warns.
        if self._unsent is not None:
            handed_over(self)
        return super().__getstate__()


def _declare_schedule(cls: type[BaseTask[Any]], value: Any) -> None:
    """``schedule = cron(...)`` / ``every(...)`` on a task class: dispatch it at each tick
    (from workers run with ``--schedules``). A method or property named ``schedule`` is the
    class's own business and left alone."""
    if value is None or callable(value) or hasattr(value, "__get__"):
        return
    from asynctasq.schedules.registry import schedule_class

    schedule_class(cls, value)


class _Unsent:
    """Carried by a task that a chain method configured, until it is dispatched: dropped
    while still armed (with its task), it warns.

    A separate object rather than a ``__del__`` on every task: tasks never chained (the
    worker's, the plain ``f(x).dispatch()``, ones built to call ``handle()``) pay nothing.
    It holds no reference to its task, so it makes no cycle.
    """

    __slots__ = ("method", "name")

    def __init__(self, name: str, method: str) -> None:
        self.name = name
        self.method: str | None = method  # the last chain method called; None: disarmed

    def __del__(self) -> None:
        if self.method is not None:
            _warn_undispatched(self.name, self.method)


def invoke(task: BaseTask[Any]) -> Any:
    """Run `task`'s body, as a worker does: a coroutine for an async task, the result for
    a sync one. (Each kind of task implements ``_invoke``; executors call this.)"""
    return task._invoke()


_FRAMEWORK_STATE = frozenset(
    {"_options", "_task_id", "_tracked", "_attempts", "_dispatched_at", "_unsent"}
    | {"_driver_override"}
)
"""Private instance attributes the framework itself sets (or reads, ``_driver_override``)."""


_warned: set[type] = set()  # classes told once already (a process has finitely many)


class PrivateStateWarning(UserWarning):
    """A class task set private attributes that will not reach the worker."""


def _warn_left_behind(cls: type, names: list[str]) -> None:
    warnings.warn(
        f"{cls.__qualname__} sets {', '.join(names)}, which will not reach the worker: only "
        "public attributes travel with a class task, and the worker does not run __init__. "
        "Name them without the leading underscore, or set them in handle()",
        PrivateStateWarning,
        stacklevel=4,
    )


def set_attempts(task: BaseTask[Any], attempts: int) -> None:
    """Tell `task` how many runs came before this one (0 on the first), before it runs:
    what the task reads as ``self._attempts``."""
    task._attempts = attempts


def handed_over(task: BaseTask[Any]) -> None:
    """Someone took charge of dispatching `task` (e.g. after a transaction commits, or not at
    all when it rolls back): it no longer warns if dropped undispatched."""
    unsent = task._unsent
    if unsent is not None:
        unsent.method = None
        task._unsent = None


def _warn_undispatched(name: str, method: str) -> None:
    if sys.is_finalizing():
        return  # at interpreter exit the warnings machinery may be gone
    hint = (
        " (.delay(seconds) only sets a delay; unlike Celery's .delay() it queues nothing)"
        if method == "delay"
        else ""
    )
    # stacklevel 3 (past __del__): the frame that dropped the task, as for an unawaited
    # coroutine.
    warnings.warn(
        f"task {name} was configured with .{method}() but never dispatched: "
        f"nothing was queued{hint}. End the chain with .dispatch() and await it.",
        RuntimeWarning,
        stacklevel=3,
    )


class Task(BaseTask[T]):
    """An async task: implement ``async def handle(self) -> T``; runs in the event loop."""

    _abstract = True

    async def handle(self) -> T:
        """The task body."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement handle()")

    def _invoke(self) -> Any:
        return self.handle()


class SyncTask(BaseTask[T]):
    """A blocking task: implement ``def handle_sync(self) -> T``; runs in a thread pool."""

    _abstract = True
    _execution: ClassVar[Execution] = "thread"

    def handle_sync(self) -> T:
        """The task body."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement handle_sync()")

    def _invoke(self) -> Any:
        return self.handle_sync()


class AsyncProcessTask(Task[T]):
    """An async task run in a child process (its own event loop): CPU-heavy async work."""

    _abstract = True
    _execution: ClassVar[Execution] = "process"


class SyncProcessTask(SyncTask[T]):
    """A blocking task run in a child process: CPU-heavy work that must bypass the GIL."""

    _abstract = True
    _execution: ClassVar[Execution] = "process"


__all__ = ["AsyncProcessTask", "BaseTask", "SyncProcessTask", "SyncTask", "Task", "handed_over"]
