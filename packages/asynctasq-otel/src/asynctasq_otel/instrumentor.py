"""`AsyncTasQInstrumentor`: OpenTelemetry's instrumentor shape for AsyncTasQ.

Middleware added with `asynctasq.middleware.add_middleware` is process-wide: it runs for
every dispatch and in every `Worker` built afterwards, before the worker's own middleware (so
its ``before_*`` hooks run first and its ``after_*`` hooks last, and other middleware log
inside the span), including workers built by code it does not own (``asynctasq worker``).
`uninstrument` removes it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from asynctasq.middleware import add_middleware, dispatch_middleware, remove_middleware
from asynctasq_otel.middleware import TracingMiddleware


class AsyncTasQInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Trace dispatches and worker runs in this process.

    ``AsyncTasQInstrumentor().instrument(tracer_provider=...)`` (or
    `asynctasq_otel.instrument`) adds a `TracingMiddleware` to dispatch and to every
    `Worker` built afterwards; ``opentelemetry-instrument`` calls it through the
    ``opentelemetry_instrumentor`` entry point. Without it, nothing is added: tracing costs
    nothing.
    """

    _middleware: TracingMiddleware | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("asynctasq-core",)

    @property
    def middleware(self) -> TracingMiddleware | None:
        """The middleware in effect while instrumented."""
        return self._middleware

    def _instrument(self, **kwargs: Any) -> None:
        middleware = TracingMiddleware(kwargs.get("tracer_provider"))
        self._middleware = middleware
        add_middleware(middleware)

    def _uninstrument(self, **kwargs: Any) -> None:
        middleware, self._middleware = self._middleware, None
        if middleware is not None and middleware in dispatch_middleware():
            remove_middleware(middleware)
