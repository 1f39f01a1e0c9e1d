"""Spans of dispatches and runs in this process, on the in-memory driver, through the real
worker (`asynctasq.testing.memory_queues`)."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from asynctasq.core.envelope import decode
from asynctasq.core.function import task
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.middleware import Middleware, add_middleware, remove_middleware
from asynctasq.testing import memory_queues
from asynctasq.worker import Worker
from asynctasq_otel import TracingMiddleware

QUEUE = "otel-in-process"


@task(queue=QUEUE)
async def add(a: int, b: int) -> int:
    return a + b


class Flaky(RuntimeError):
    pass


@task(queue=QUEUE, max_attempts=3, retry_delay=1)
async def always_fails() -> None:
    raise Flaky("nope")


_task_tracer: list[trace.Tracer] = []  # the test's provider (the global one is left alone)


@task(queue=QUEUE)
async def makes_a_span() -> str:
    with _task_tracer[0].start_as_current_span("inside the task") as span:
        return format(span.get_span_context().span_id, "016x")


def named(spans: Sequence[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == kind]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_dispatch_and_its_run_are_producer_and_consumer_spans_of_one_trace(
    instrumented: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = instrumented.get_tracer("test")
    with memory_queues() as queues:
        with tracer.start_as_current_span("request") as request:
            task_id = str(await add(2, 3).dispatch())
        outcomes = await queues.run_until_idle()
    assert [o.result for o in outcomes] == [5]
    spans = exporter.get_finished_spans()
    (send,) = named(spans, SpanKind.PRODUCER)
    (process,) = named(spans, SpanKind.CONSUMER)
    trace_id = request.get_span_context().trace_id
    assert send.name == f"send {QUEUE}" and process.name == f"process {QUEUE}"
    assert send.context.trace_id == process.context.trace_id == trace_id
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.parent.is_remote  # it came through the message, not this process's context
    assert attributes(send) == {
        "messaging.system": "asynctasq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": QUEUE,
        "messaging.message.id": task_id,
        "asynctasq.task.name": add.name,
    }
    assert attributes(process) == {
        "messaging.system": "asynctasq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": QUEUE,
        "messaging.message.id": task_id,
        "asynctasq.task.name": add.name,
        "asynctasq.task.attempt": 1,
        "asynctasq.task.outcome": "succeeded",
    }
    assert process.status.status_code == StatusCode.UNSET


async def test_the_message_carries_the_send_span_as_w3c_trace_context(
    instrumented: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with memory_queues() as queues:
        await add(1, 2).dispatch()
        (message,) = queues.driver.messages()
    (send,) = exporter.get_finished_spans()
    context = send.get_span_context()
    assert dict(decode(message.payload).headers) == {
        "traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-"
        f"{int(context.trace_flags):02x}"
    }


async def test_spans_the_task_makes_are_children_of_its_consumer_span(
    instrumented: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _task_tracer[:] = [instrumented.get_tracer("inside")]
    with memory_queues() as queues:
        await makes_a_span().dispatch()
        (outcome,) = await queues.run_until_idle()
    spans = exporter.get_finished_spans()
    (process,) = named(spans, SpanKind.CONSUMER)
    (inside,) = [s for s in spans if s.name == "inside the task"]
    assert outcome.result == format(inside.context.span_id, "016x")
    assert inside.parent is not None and inside.parent.span_id == process.context.span_id
    assert inside.context.trace_id == process.context.trace_id


async def test_each_retry_is_its_own_span_in_the_same_trace_and_failures_record_the_error(
    instrumented: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = instrumented.get_tracer("test")
    with memory_queues() as queues:
        with tracer.start_as_current_span("request") as request:
            await always_fails().dispatch()
        (outcome,) = await queues.run_until_idle()
    assert outcome.state == "dead_lettered" and outcome.runs == 3
    spans = exporter.get_finished_spans()
    (send,) = named(spans, SpanKind.PRODUCER)
    runs = named(spans, SpanKind.CONSUMER)
    assert [attributes(s)["asynctasq.task.attempt"] for s in runs] == [1, 2, 3]
    assert [attributes(s)["asynctasq.task.outcome"] for s in runs] == [
        "retried",
        "retried",
        "dead_lettered",
    ]
    assert len({s.context.span_id for s in runs}) == 3
    for span in runs:
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.parent is not None and span.parent.span_id == send.context.span_id
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description is not None and "nope" in span.status.description
        assert attributes(span)["error.type"].endswith("Flaky")
        (exception,) = [e for e in span.events if e.name == "exception"]
        assert exception.attributes is not None
        assert exception.attributes["exception.message"] == "nope"
    assert all(attributes(s)["asynctasq.retry.delay"] >= 0 for s in runs[:2])
    (dead,) = [e for e in runs[2].events if e.name == "asynctasq.dead_letter"]
    assert dead.attributes is not None and str(dead.attributes["error.type"]).endswith("Flaky")


async def test_an_expired_task_is_a_consumer_span_with_the_expired_outcome(
    instrumented: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with memory_queues() as queues:
        await add(1, 1).expires(datetime.now(UTC) + timedelta(milliseconds=50)).dispatch()
        queues.driver.make_due()
        await _sleep(0.1)
        await queues.run_until_idle()
    spans = exporter.get_finished_spans()
    (send,) = named(spans, SpanKind.PRODUCER)
    (process,) = named(spans, SpanKind.CONSUMER)
    assert attributes(process)["asynctasq.task.outcome"] == "expired"
    assert [e.name for e in process.events] == ["asynctasq.expired"]
    assert process.parent is not None and process.parent.span_id == send.context.span_id


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


class Veto(Middleware):
    def before_enqueue(self, task: BaseTask[Any], message: OutgoingMessage) -> None:
        raise PermissionError("not today")


async def test_a_dispatch_that_queued_nothing_still_ends_its_send_span(
    instrumented: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    veto = Veto()
    with memory_queues() as queues:
        add_middleware(veto)
        try:
            pending = add(1, 2)
            with pytest.raises(PermissionError):
                await pending.dispatch()
        finally:
            remove_middleware(veto)
        assert queues.driver.messages() == []
    assert exporter.get_finished_spans() == ()  # still open while the task object lives
    del pending, queues  # the queues record the dispatched task object too
    gc.collect()
    (send,) = exporter.get_finished_spans()
    assert send.kind == SpanKind.PRODUCER
    assert [e.name for e in send.events] == ["asynctasq.dispatch.not_queued"]


class GarbageContext(Middleware):
    def message_headers(self, task: BaseTask[Any]) -> dict[str, str]:
        return {"traceparent": "00-not-a-trace-context-01", "tracestate": "=,=,="}


async def test_a_malformed_trace_context_in_a_message_starts_a_new_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    garbage = GarbageContext()
    with memory_queues() as queues:
        add_middleware(garbage)
        try:
            await add(1, 2).dispatch()
        finally:
            remove_middleware(garbage)
        queues.middleware.append(TracingMiddleware(provider))
        (outcome,) = await queues.run_until_idle()
    assert outcome.result == 3
    (process,) = exporter.get_finished_spans()
    assert process.kind == SpanKind.CONSUMER and process.parent is None


async def test_without_instrumenting_nothing_is_added(exporter: InMemorySpanExporter) -> None:
    from asynctasq.middleware import dispatch_middleware

    with memory_queues() as queues:
        await add(1, 2).dispatch()
        (message,) = queues.driver.messages()
        assert decode(message.payload).headers == {}
        await queues.run_until_idle()
    worker = Worker("memory")
    assert not any(isinstance(m, TracingMiddleware) for m in worker.middleware)
    assert not any(isinstance(m, TracingMiddleware) for m in dispatch_middleware())
    assert exporter.get_finished_spans() == ()


async def test_uninstrument_undoes_instrument(provider: TracerProvider) -> None:
    import asynctasq_otel
    from asynctasq.middleware import dispatch_middleware

    asynctasq_otel.instrument(tracer_provider=provider)
    try:
        # Process-wide middleware reaches every worker built afterwards, first.
        [tracing] = [m for m in dispatch_middleware() if isinstance(m, TracingMiddleware)]
        other = Middleware()
        assert Worker("memory", middleware=[other]).middleware == [tracing, other]
        assert Worker("memory", middleware=[tracing]).middleware == [tracing]  # not twice
    finally:
        asynctasq_otel.uninstrument()
    assert not any(isinstance(m, TracingMiddleware) for m in dispatch_middleware())
    assert Worker("memory").middleware == []
