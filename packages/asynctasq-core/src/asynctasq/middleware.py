"""Middleware in dramatiq's shape: a base class whose hooks are documented no-ops.

``before_*`` hooks run in the order middleware was given, ``after_*`` in reverse. A hook that
raises is logged (with its middleware and hook name) and skipped; it never stops a worker,
loses a task or makes ``dispatch()`` fail for a task that was queued. The one exception is
``before_enqueue``: it runs before anything is queued, so it may veto a dispatch by raising;
the error propagates from ``dispatch()``/``dispatch_many()`` and nothing is queued; so does
``message_headers``, for the same reason (an error there, or a malformed header, reaches the
caller and nothing is queued). Hooks are
synchronous and run on the event loop: keep them cheap (start a task for slow work).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from asynctasq.core.headers import add_headers

if TYPE_CHECKING:
    from asynctasq.core.task import BaseTask
    from asynctasq.drivers.base import Failure, OutgoingMessage
    from asynctasq.worker.job import Job
    from asynctasq.worker.worker import Worker

log = logging.getLogger("asynctasq.middleware")


class Middleware:
    """Subclass and override the hooks you need."""

    def message_headers(self, task: BaseTask[Any]) -> Mapping[str, str] | None:
        """Headers to attach to `task`'s message (dispatch side; global middleware only).

        Called while each message is prepared, before ``before_enqueue``; the headers of
        every middleware are merged (a later one's replaces an earlier one's of the same
        name) and reach the worker as `Job.headers`. W3C trace context
        (``traceparent``, ``tracestate``) is the typical use.

        Bounds (`asynctasq.core.headers`): at most 32 headers per message, names of 1 to 64
        ASCII letters, digits, ``-``, ``_`` and ``.``, values strings of at most 1024
        printable characters. A header outside them raises `ValueError` from ``dispatch()``
        naming it, and nothing is queued.
        """
        return None

    def before_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        """A task is about to be queued (dispatch side; global middleware only).

        Raising vetoes the dispatch: nothing is queued (with ``dispatch_many``, none of the
        batch) and the error propagates to the caller.
        """

    def after_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        """A task was queued (dispatch side; global middleware only).

        An error here is logged, not raised: the task is queued whatever the hook does.
        """

    def before_worker_boot(self, worker: Worker) -> Awaitable[None] | None:
        """The worker connected and is about to take work.

        May be a coroutine function (``async def``): it is awaited, in order, before the first
        fetch, so it can initialise what tasks need (an ORM, a connection pool). An error here
        stops the worker's start-up.
        """
        return None

    def after_worker_shutdown(self, worker: Worker) -> None:
        """The worker stopped and gave back what it did not finish."""

    def before_process(self, job: Job) -> None:
        """A task is about to run (its arguments are decoded)."""

    def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
        """A run ended, with its result or its exception."""

    def after_retry(self, job: Job, exception: BaseException, delay: float) -> None:
        """A failed run was scheduled to run again after `delay` seconds."""

    def after_dead_letter(self, job: Job, failure: Failure) -> None:
        """A task failed for good and was dead-lettered."""

    def after_release(self, job: Job) -> None:
        """A task was given back unfinished (shutdown)."""

    def after_cancel(self, job: Job) -> None:
        """A task was cancelled (``asynctasq.cancel``), before or while it ran; it was
        removed from its queue and will not be retried."""

    def after_expire(self, job: Job) -> None:
        """A task was taken after its expiry and not run (dead-lettered or dropped)."""

    def after_broker_error(self, worker: Worker, operation: str, exception: Exception) -> None:
        """A call to the broker failed and will be tried again (or left to the lease).

        `operation` is one of a few fixed names: ``dequeue``, ``ack``, ``retry``,
        ``dead-letter``, ``release``, ``keeping the result``.
        """


_global: list[Middleware] = []


def add_middleware(middleware: Middleware) -> None:
    """Add middleware for this whole process: its dispatch hooks (``message_headers``,
    ``before_enqueue``, ``after_enqueue``) run for every dispatch, and its worker hooks in
    every `Worker` built afterwards, before that worker's own middleware (so an integration
    such as tracing reaches workers that code it does not own builds)."""
    _global.append(middleware)


def remove_middleware(middleware: Middleware) -> None:
    """Undo `add_middleware`."""
    _global.remove(middleware)


def dispatch_middleware() -> list[Middleware]:
    """The process-wide middleware in effect (`add_middleware`)."""
    return _global


def message_headers(middleware: list[Middleware], task: BaseTask[Any]) -> dict[str, str] | None:
    """The headers every middleware attaches to `task`'s message, merged and checked; None
    when there are none.

    Raises:
        ValueError: a middleware returned a malformed header (named, with the middleware).
        Exception: whatever a hook raised, with a note naming it: nothing was queued.
    """
    headers: dict[str, str] | None = None
    for m in middleware:
        try:
            extra = m.message_headers(task)
        except Exception as exc:
            exc.add_note(
                f"raised by middleware {type(m).__name__}.message_headers: nothing was queued"
            )
            raise
        if extra is not None:
            if headers is None:
                headers = {}
            add_headers(headers, extra, f"{type(m).__name__}.message_headers")
    return headers or None


def before_enqueue(
    middleware: list[Middleware], task: BaseTask[Any], message: OutgoingMessage
) -> None:
    """Call every ``before_enqueue`` hook; the first error propagates (it vetoes the dispatch)."""
    for m in middleware:
        try:
            m.before_enqueue(task, message)
        except Exception as exc:
            exc.add_note(
                f"raised by middleware {type(m).__name__}.before_enqueue: nothing was queued"
            )
            raise


def call_hooks(middleware: list[Middleware], hook: str, *args: Any, reverse: bool = False) -> None:
    """Call `hook` on every middleware, logging (not raising) what goes wrong."""
    for m in reversed(middleware) if reverse else middleware:
        try:
            getattr(m, hook)(*args)
        except Exception:
            log.exception("middleware %s.%s failed", type(m).__name__, hook)
