"""The middleware's hooks called directly: outcomes the worker reaches rarely (cancelled,
given back, a settle the broker refused), hostile task names, and the attribute names
checked against OpenTelemetry's semantic conventions package."""

from __future__ import annotations

import dataclasses
import gc

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import messaging_attributes as messaging
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, StatusCode

from asynctasq.core.dispatch import prepare
from asynctasq.core.envelope import decode
from asynctasq.core.function import task
from asynctasq.drivers.base import Delivery
from asynctasq.worker.job import Job
from asynctasq_otel import TracingMiddleware
from asynctasq_otel import _attributes as attr


@task(queue="jobs")
async def work() -> None:
    return None


def job(attempts: int = 0, name: str | None = None) -> Job:
    message = prepare(work())
    envelope = decode(message.payload)
    if name is not None:
        envelope = dataclasses.replace(envelope, task=name)
    delivery = Delivery(message.task_id, "jobs", message.payload, attempts, None, 30)
    return Job(delivery, envelope=envelope)


def test_the_attribute_names_are_the_semantic_conventions_ones() -> None:
    assert attr.MESSAGING_SYSTEM == messaging.MESSAGING_SYSTEM
    assert attr.MESSAGING_OPERATION_TYPE == messaging.MESSAGING_OPERATION_TYPE
    assert attr.MESSAGING_OPERATION_NAME == messaging.MESSAGING_OPERATION_NAME
    assert attr.MESSAGING_DESTINATION_NAME == messaging.MESSAGING_DESTINATION_NAME
    assert attr.MESSAGING_MESSAGE_ID == messaging.MESSAGING_MESSAGE_ID
    assert attr.ERROR_TYPE == error_attributes.ERROR_TYPE
    operation = messaging.MessagingOperationTypeValues
    assert (operation.SEND.value, operation.PROCESS.value) == (attr.SEND, attr.PROCESS)


def test_a_task_cancelled_while_it_ran_ends_its_span_as_cancelled(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = TracingMiddleware(provider)
    running = job(attempts=1)
    tracing.before_process(running)
    tracing.after_cancel(running)
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.CONSUMER and span.status.status_code == StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["asynctasq.task.outcome"] == "cancelled"
    assert span.attributes["asynctasq.task.attempt"] == 2
    assert [e.name for e in span.events] == ["asynctasq.cancelled"]


def test_a_task_given_back_at_shutdown_ends_its_span_as_released(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = TracingMiddleware(provider)
    running = job()
    tracing.before_process(running)
    tracing.after_release(running)
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["asynctasq.task.outcome"] == "released"


def test_a_failure_the_broker_never_settled_still_ends_its_span_as_unsettled(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = TracingMiddleware(provider)
    running = job()
    tracing.before_process(running)
    tracing.after_process(running, None, RuntimeError("boom"))
    assert exporter.get_finished_spans() == ()  # waiting for after_retry / after_dead_letter
    del running  # the worker dropped the job: its retry never went through
    gc.collect()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["asynctasq.task.outcome"] == "unsettled"
    assert span.status.status_code == StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


def test_a_hostile_task_name_is_cut_in_the_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = TracingMiddleware(provider)
    running = job(name="x" * 100_000)
    tracing.before_process(running)
    tracing.after_process(running, 1, None)
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["asynctasq.task.name"] == "x" * attr.MAX_NAME_LENGTH


def test_opentelemetry_instrument_finds_the_instrumentor() -> None:
    from importlib.metadata import entry_points

    from asynctasq_otel import AsyncTasQInstrumentor

    group = entry_points(group="opentelemetry_instrumentor")
    (found,) = [e for e in group if e.name == "asynctasq"]
    assert found.load() is AsyncTasQInstrumentor
