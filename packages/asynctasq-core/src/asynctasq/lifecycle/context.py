"""The running task's context: its id, a cancellation flag it can poll, progress reports.

The worker sets it around each run (in the event loop, and copied into a task's thread), so
any code a task calls can reach it::

    from asynctasq import current_task

    @task
    async def resize(paths: list[str]) -> None:
        for i, path in enumerate(paths):
            ...
            await current_task().progress((i + 1) / len(paths), f"resized {i + 1}")

Class tasks have the same as ``await self.progress(...)`` and ``self.cancel_requested``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

ProgressSink = Callable[[float, str | None], None]
"""Takes a progress report; must be safe to call from any thread and never block."""


@dataclass(slots=True)
class TaskContext:
    """What a running task can learn and report about itself.

    Attributes:
        task_id: The task's id.
        task_name: ``module:qualname``.
        queue: Its queue.
        attempt: Runs before this one (0 on the first).
    """

    task_id: str
    task_name: str
    queue: str
    attempt: int
    _sink: ProgressSink | None = None
    _cancel_requested: bool = False  # set on the event loop, read from any thread

    @property
    def cancel_requested(self) -> bool:
        """Whether this run should stop: someone cancelled the task, its timeout passed,
        or the worker stops and gives it back.

        Async tasks are cancelled for you (``asyncio.CancelledError`` at their next
        ``await``) and process tasks have their child stopped; a task running in a thread
        cannot be stopped from outside (Python has no way to kill a thread), so a long one
        should check this now and then and return (or raise) when it turns true.
        """
        return self._cancel_requested

    def ask_to_stop(self) -> None:
        """Turn `cancel_requested` true (the worker: a cancel, a timeout, a shutdown)."""
        self._cancel_requested = True

    def report_progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress without waiting (from async code or a task's thread).

        Reports are rate-limited by the worker: calling this in a tight loop is fine; the
        latest report is always the one kept.

        Args:
            fraction: Done so far, from 0.0 to 1.0.
            message: A short note ("resized 4/10").

        Raises:
            ValueError: `fraction` is not a number from 0 to 1.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise ValueError(f"progress must be a number from 0 to 1, got {fraction!r}")
        if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress must be a number from 0 to 1, got {fraction!r}")
        if message is not None and not isinstance(message, str):
            raise ValueError(f"a progress message must be a str, got {type(message).__name__}")
        if self._sink is not None:
            self._sink(float(fraction), message)

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress (see `report_progress`); awaitable for async tasks."""
        self.report_progress(fraction, message)


_current: ContextVar[TaskContext | None] = ContextVar("asynctasq_task_context", default=None)


def current_task() -> TaskContext:
    """The context of the task running in this context (event loop task or thread).

    Raises:
        RuntimeError: called outside a task run by a worker.
    """
    context = running_task()
    if context is None:
        raise RuntimeError(
            "current_task() is only available inside a task run by a worker (or in its thread)"
        )
    return context


def running_task() -> TaskContext | None:
    """The context of the task running in this context, or None outside a task run."""
    return _current.get()


def set_current(context: TaskContext | None) -> object:
    """Make `context` current; returns a token for `reset_current`."""
    return _current.set(context)


def reset_current(token: object) -> None:
    """Undo `set_current`."""
    _current.reset(token)  # type: ignore[arg-type]  # the token set_current returned


__all__ = ["TaskContext", "current_task"]
