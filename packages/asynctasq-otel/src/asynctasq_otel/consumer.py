"""Worker side: a CONSUMER span per delivery, a child of the context its message carries.

The span starts in ``before_process`` and is current while the task runs, so spans the task
makes (HTTP calls, queries) are its children. It ends when the delivery's outcome is known:
``after_process`` for a success; for a failure, the ``after_retry`` or ``after_dead_letter``
that follows it; ``after_cancel``, ``after_release``. A delivery that never reached
``before_process`` (expired, cancelled while queued, undecodable, its code not found) gets a
span that starts and ends in the hook that settles it, so every delivery is one span.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from asynctasq.errors import TaskExpiredError
from asynctasq.serializer.errors import qualified_name
from asynctasq_otel import _attributes as attr
from asynctasq_otel._spans import OpenSpan

if TYPE_CHECKING:
    from asynctasq.drivers.base import Failure
    from asynctasq.worker.job import Job

STATE_KEY = "asynctasq_otel.span"
"""Where the open span waits in `Job.state`."""
_EXPIRED = qualified_name(TaskExpiredError)


def _unsettled(span: Span) -> None:
    span.set_attribute(attr.TASK_OUTCOME, "unsettled")


def _fail(span: Span, error_type: str, message: str) -> None:
    span.set_attribute(attr.ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"[:500]))


class ConsumerSpans:
    """The worker-side half of `TracingMiddleware`."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def _start(self, job: Job) -> Span:
        headers = job.headers
        parent = propagate.extract(headers) if headers else None
        return self._tracer.start_span(
            f"{attr.PROCESS} {job.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                attr.MESSAGING_SYSTEM: attr.SYSTEM,
                attr.MESSAGING_OPERATION_TYPE: attr.PROCESS,
                attr.MESSAGING_OPERATION_NAME: attr.PROCESS,
                attr.MESSAGING_DESTINATION_NAME: job.queue,
                attr.MESSAGING_MESSAGE_ID: job.task_id,
                # From the message: bounded, it is hostile input like the rest.
                attr.TASK_NAME: job.task_name[: attr.MAX_NAME_LENGTH],
                attr.TASK_ATTEMPT: job.attempts + 1,
            },
        )

    def before_process(self, job: Job) -> None:
        span = self._start(job)
        held = OpenSpan(span, _unsettled)
        held.token = context.attach(trace.set_span_in_context(span))
        job.state[STATE_KEY] = held

    def _deactivate(self, job: Job) -> OpenSpan | None:
        """The job's open span, no longer current (hooks that end a run call this in the
        task's own context, where ``before_process`` made it current)."""
        held: OpenSpan | None = job.state.get(STATE_KEY)
        if held is None:
            return None
        token, held.token = held.token, None
        if token is not None and held.span is not None and trace.get_current_span() is held.span:
            context.detach(token)  # type: ignore[arg-type]
        return held

    def _settle(self, job: Job, outcome: str) -> Span:
        """The span to end for `job` with `outcome`: its open one, or a new one for a
        delivery that never ran."""
        held = self._deactivate(job)
        job.state.pop(STATE_KEY, None)
        span = held.finish() if held is not None else None
        if span is None:
            span = self._start(job)
        span.set_attribute(attr.TASK_OUTCOME, outcome)
        return span

    def after_process(self, job: Job, exception: BaseException | None) -> None:
        if exception is None:
            self._settle(job, "succeeded").end()
            return
        held = self._deactivate(job)
        span = held.span if held is not None else None
        if span is not None and span.is_recording():
            span.record_exception(exception)
            _fail(span, qualified_name(type(exception)), str(exception))
        # Open until after_retry or after_dead_letter says what became of the task.

    def after_retry(self, job: Job, exception: BaseException, delay: float) -> None:
        fresh = STATE_KEY not in job.state
        span = self._settle(job, "retried")
        if fresh:  # it failed before it ran (its code or arguments could not be loaded)
            span.record_exception(exception)
            _fail(span, qualified_name(type(exception)), str(exception))
        span.set_attribute(attr.RETRY_DELAY, float(delay))
        span.end()

    def after_dead_letter(self, job: Job, failure: Failure) -> None:
        if failure.exception_type == _EXPIRED:
            return  # after_expire follows: one span for the delivery, with that outcome
        fresh = STATE_KEY not in job.state
        span = self._settle(job, "dead_lettered")
        span.add_event(
            "asynctasq.dead_letter",
            {attr.ERROR_TYPE: failure.exception_type, "exception.message": failure.message[:500]},
        )
        if fresh:
            _fail(span, failure.exception_type, failure.message)
        span.end()

    def after_cancel(self, job: Job) -> None:
        span = self._settle(job, "cancelled")
        span.add_event("asynctasq.cancelled")
        span.end()

    def after_expire(self, job: Job) -> None:
        span = self._settle(job, "expired")
        span.add_event("asynctasq.expired")
        span.end()

    def after_release(self, job: Job) -> None:
        self._settle(job, "released").end()


__all__ = ["STATE_KEY", "ConsumerSpans"]
