"""Fixtures: an SDK tracer provider recording into memory, and instrumentation undone after
each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import asynctasq_otel

TASKS_DIR = Path(__file__).parent / "task_modules"
if str(TASKS_DIR) not in sys.path:
    sys.path.insert(0, str(TASKS_DIR))


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider of the test's own (the global one can be set only once per process)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def instrumented(provider: TracerProvider) -> Iterator[TracerProvider]:
    """This process instrumented with `provider` for the test."""
    asynctasq_otel.instrument(tracer_provider=provider)
    try:
        yield provider
    finally:
        asynctasq_otel.uninstrument()
