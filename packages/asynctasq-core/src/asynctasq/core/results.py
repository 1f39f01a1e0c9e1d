"""Task results, kept when a task asks for it (``keep_result``) and awaited by id.

The worker stores an *outcome* document through the driver (`ResultStore`): ``{"ok": value}``
with the return value in the serializer's wire form, or ``{"error": [type, message]}`` once
the task failed for good. `TaskId.result` / `result` wait for it and return the value or
raise `TaskFailedError`.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import orjson

from asynctasq.drivers.base import Driver, ResultStore
from asynctasq.drivers.connections import get_driver
from asynctasq.drivers.registry import use_one_of
from asynctasq.errors import ResultNotKeptError, ResultTimeoutError, TaskFailedError
from asynctasq.serializer import from_wire_async, to_wire

if TYPE_CHECKING:
    from asynctasq.lifecycle.control import CancelOutcome
    from asynctasq.lifecycle.status import TaskStatus

T = TypeVar("T")

_WAIT_CHUNK = 30.0
"""Longest single wait asked of a driver (a `None` timeout waits in chunks of this)."""


@functools.cache
def _class_keeps_results(cls: type) -> bool:
    return issubclass(cls, ResultStore)


def keeps_results(driver: Driver) -> bool:
    """Whether `driver` is a `ResultStore` (cached per class: a runtime protocol check
    costs microseconds, and dispatch asks for every task that keeps its result)."""
    return _class_keeps_results(type(driver))


def cannot_keep(driver: Driver, why: str) -> TypeError:
    """The error for keeping results on `driver`, which cannot."""
    return TypeError(
        f"{type(driver).__name__} cannot keep task results ({why}); "
        f"{use_one_of(ResultStore)} or drop keep_result"
    )


def encode_value(value: Any, task_name: str) -> bytes:
    """The outcome of a run that returned `value`.

    Raises:
        SerializationError: the value cannot be serialized (named in the message).
    """
    return orjson.dumps({"ok": to_wire(value, path=f"the result of {task_name}")})


def encode_failure(exception_type: str, message: str) -> bytes:
    """The outcome of a task that failed for good."""
    return orjson.dumps({"error": [exception_type, message]})


async def decode(task_id: str, raw: bytes) -> Any:
    """The value an outcome holds; raises `TaskFailedError` for a failure."""
    doc = orjson.loads(raw)
    if "error" in doc:
        exception_type, message = doc["error"]
        raise TaskFailedError(task_id, exception_type, message)
    return await from_wire_async(doc["ok"])


async def result(
    task_id: str, *, driver: str | Driver | None = None, timeout: float | None = None
) -> Any:
    """Wait for the result of task `task_id` and return it.

    Args:
        task_id: The id `dispatch()` returned.
        driver: The driver the task went to (a name or instance); default: the configured
            one.
        timeout: Seconds to wait; None waits as long as it takes.

    Raises:
        TaskFailedError: The task failed for good (its exception type and message).
        ResultTimeoutError: No result within `timeout` (still running, or never kept: the
            task has no ``keep_result``, or the result expired).
        TypeError: The driver cannot keep results.
    """
    store = await get_driver(driver)
    if not isinstance(store, ResultStore):
        raise cannot_keep(store, "awaiting a result")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = _WAIT_CHUNK if deadline is None else deadline - time.monotonic()
        raw = await store.fetch_result(task_id, max(min(left, _WAIT_CHUNK), 0.0))
        if raw is not None:
            return await decode(task_id, raw)
        if deadline is not None and time.monotonic() >= deadline:
            raise ResultTimeoutError(
                f"no result for task {task_id} within {timeout} s (a task keeps its result "
                "only with keep_result)"
            )


def canonical_task_id(task_id: object) -> str:
    """A caller's task id as the canonical UUID string every task id is (drivers may store
    ids as UUIDs, and an id written in capitals must name the same task).

    Raises:
        ValueError: `task_id` is not a UUID (a typo, a truncated copy).
    """
    if isinstance(task_id, uuid.UUID):
        return str(task_id)
    try:
        if isinstance(task_id, str):
            return str(uuid.UUID(task_id))
    except ValueError:
        pass
    raise ValueError(f"task_id must be a UUID string (as dispatch() returns), got {task_id!r:.80}")


class TaskId(str, Generic[T]):
    """The id `dispatch()` returns: a plain string that can also wait for the result, tell
    where the task is, and cancel it.

    ``await task_id.result(timeout=10)`` is `result` on the driver the task went to, typed
    as what the task returns (``TaskId[int]`` for a task returning ``int``);
    ``await task_id.status()`` and ``await task_id.cancel()`` are `asynctasq.status` and
    `asynctasq.cancel` there. From sync code, ``result_sync``, ``status_sync`` and
    ``cancel_sync`` do the same on the sync dispatch loop (`asynctasq.core.sync`).
    """

    # The driver as the task names it (a name, None for the configured one, or the instance
    # the task was given), not the instance some event loop built: an id works on any loop,
    # with that loop's connections (a sync dispatch's id in an async view, and back).
    _driver: str | Driver | None
    _unkept: str | None
    """The task's name when it was dispatched without keep_result (None: unknown, or kept)."""
    _asynctasq_plain_str = True  # the serializer sends it as the plain id

    def __new__(
        cls, value: str, driver: str | Driver | None = None, *, unkept: str | None = None
    ) -> TaskId[T]:
        self = super().__new__(cls, value)
        self._driver = driver
        self._unkept = unkept
        return self

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return (str, (str(self),))  # pickles and copies as the plain id

    async def result(self, timeout: float | None = None) -> T:
        """Wait for this task's result; see `asynctasq.result`.

        Raises:
            ResultNotKeptError: the task was dispatched without ``keep_result``.
        """
        if self._unkept is not None:
            raise ResultNotKeptError(
                f"task {self._unkept} does not keep its result, so there is none to wait "
                f"for: give it keep_result=True (or the seconds to keep it) to await it"
            )
        return cast(T, await result(str(self), driver=self._driver, timeout=timeout))

    async def status(self) -> TaskStatus | None:
        """Where this task is (tracked tasks); see `asynctasq.status`."""
        from asynctasq.lifecycle.control import status

        return await status(str(self), driver=self._driver)

    async def cancel(self) -> CancelOutcome:
        """Cancel this task; see `asynctasq.cancel`."""
        from asynctasq.lifecycle.control import cancel

        return await cancel(str(self), driver=self._driver)

    def result_sync(self, timeout: float | None = None) -> T:
        """`result` from sync code (a Flask view, a script): blocks this thread, not a loop.

        Raises:
            RuntimeError: called from a running event loop (``await task_id.result()``).
            ResultTimeoutError: no result within `timeout` seconds.
        """
        from asynctasq.core.sync import run_sync

        return run_sync(self.result(timeout), "result_sync()", "`await task_id.result()`")

    def status_sync(self) -> TaskStatus | None:
        """`status` from sync code."""
        from asynctasq.core.sync import run_sync

        return run_sync(self.status(), "status_sync()", "`await task_id.status()`")

    def cancel_sync(self) -> CancelOutcome:
        """`cancel` from sync code."""
        from asynctasq.core.sync import run_sync

        return run_sync(self.cancel(), "cancel_sync()", "`await task_id.cancel()`")


__all__ = ["TaskId", "result"]
