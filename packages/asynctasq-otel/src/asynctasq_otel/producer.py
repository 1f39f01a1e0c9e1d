"""Dispatch side: a PRODUCER span per message, whose context travels in the message.

Core calls, for each message: ``message_headers`` (the span starts, and its context is
written into the headers with the configured propagators), ``before_enqueue`` (the queue and
the task id are known: the span is named and described), ``after_enqueue`` (queued: the span
ends). With ``dispatch_many`` every message is prepared before any is sent, so several spans
are open at once: they are kept per task object, never made current.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer

from asynctasq.core.function import FunctionTask
from asynctasq.core.registry import task_name
from asynctasq_otel import _attributes as attr
from asynctasq_otel._spans import OpenSpan

if TYPE_CHECKING:
    from asynctasq.core.task import BaseTask
    from asynctasq.drivers.base import OutgoingMessage

NOT_QUEUED = "asynctasq.dispatch.not_queued"
"""Event on a send span whose dispatch did not queue the message: it failed or was vetoed
(the error reached the caller), or a unique task's key was held by another task."""


def name_of(task: BaseTask[Any]) -> str:
    """The registered name of `task` (what the worker sees as the task name)."""
    return task.function.name if isinstance(task, FunctionTask) else task_name(type(task))


def _not_queued(span: Span) -> None:
    span.add_event(NOT_QUEUED)


class ProducerSpans:
    """The dispatch-side half of `TracingMiddleware`."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        # By id, not in a WeakKeyDictionary: a task class may define __eq__ without __hash__.
        # The weak reference's callback drops the entry when the task object dies, which ends
        # a span no after_enqueue ended (`OpenSpan`).
        self._open: dict[int, tuple[weakref.ref[BaseTask[Any]], OpenSpan]] = {}

    def _take(self, key: int) -> OpenSpan | None:
        entry = self._open.pop(key, None)
        return entry[1] if entry is not None else None

    def message_headers(self, task: BaseTask[Any]) -> dict[str, str] | None:
        """Start the send span of `task`'s message; its context as headers."""
        name = name_of(task)
        span = self._tracer.start_span(
            attr.SEND,
            kind=SpanKind.PRODUCER,
            attributes={
                attr.MESSAGING_SYSTEM: attr.SYSTEM,
                attr.MESSAGING_OPERATION_TYPE: attr.SEND,
                attr.MESSAGING_OPERATION_NAME: attr.SEND,
                attr.TASK_NAME: name,
            },
        )
        key = id(task)
        previous = self._take(key)
        if previous is not None:  # the same task object dispatched again before this ended
            dropped = previous.finish()
            if dropped is not None:
                _not_queued(dropped)
                dropped.end()
        drop = self._take
        self._open[key] = (weakref.ref(task, lambda _: drop(key)), OpenSpan(span, _not_queued))
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier or None

    def before_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        """Name and describe the span: the queue and the task id are known now."""
        entry = self._open.get(id(task))
        span = entry[1].span if entry is not None else None
        if span is None or not span.is_recording():
            return
        span.update_name(f"{attr.SEND} {message.queue}")
        span.set_attribute(attr.MESSAGING_DESTINATION_NAME, message.queue)
        span.set_attribute(attr.MESSAGING_MESSAGE_ID, message.task_id)
        if message.delay:
            span.set_attribute(attr.TASK_DELAY, float(message.delay))

    def after_enqueue(self, task: BaseTask[Any]) -> None:
        """The message is queued: end its span."""
        held = self._take(id(task))
        span = held.finish() if held is not None else None
        if span is not None:
            span.end()
