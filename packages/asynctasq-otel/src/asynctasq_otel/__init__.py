"""OpenTelemetry tracing for AsyncTasQ.

Once instrumented, dispatching a task makes a PRODUCER span ``send <queue>`` whose W3C
trace context travels in the message headers, and a worker makes a CONSUMER span
``process <queue>`` around each delivery, a child of it: one trace from the request that
queued a task to every run of it. Follows OpenTelemetry's messaging semantic conventions.

    import asynctasq_otel
    asynctasq_otel.instrument()          # after configuring the SDK

Workers started by the CLI: ``asynctasq worker --import asynctasq_otel.auto`` or
``opentelemetry-instrument asynctasq worker``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import TracerProvider

from asynctasq_otel._attributes import OUTCOMES
from asynctasq_otel.instrumentor import AsyncTasQInstrumentor
from asynctasq_otel.middleware import TracingMiddleware


def instrument(tracer_provider: TracerProvider | None = None, **kwargs: Any) -> None:
    """Trace dispatches and worker runs in this process (see `AsyncTasQInstrumentor`).

    Args:
        tracer_provider: Where spans go; the global provider when None.
        **kwargs: Passed to ``AsyncTasQInstrumentor().instrument``.
    """
    if tracer_provider is not None:
        kwargs["tracer_provider"] = tracer_provider
    AsyncTasQInstrumentor().instrument(**kwargs)


def uninstrument() -> None:
    """Undo `instrument`: no new spans; workers built afterwards are not traced."""
    AsyncTasQInstrumentor().uninstrument()


__all__ = ["OUTCOMES", "AsyncTasQInstrumentor", "TracingMiddleware", "instrument", "uninstrument"]
