"""`AsyncTasQInstrumentor`: OpenTelemetry's instrumentor shape for AsyncTasQ.

Dispatch-side middleware is process-wide in core (`asynctasq.middleware.add_middleware`);
worker middleware is given to each `Worker`. To reach workers built by code it does not own
(``asynctasq worker``), the instrumentor wraps `Worker.__init__` so every worker built while
instrumented puts the tracing middleware first (its ``before_*`` hooks run first and its
``after_*`` hooks last, so other middleware log inside the span). `uninstrument` undoes both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from asynctasq.middleware import add_middleware, dispatch_middleware, remove_middleware
from asynctasq.worker import Worker
from asynctasq_otel.middleware import TracingMiddleware

_ORIGINAL_INIT = "_asynctasq_otel_original_init"


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
        original: Callable[..., None] = Worker.__init__

        @functools.wraps(original)
        def init(worker: Worker, *args: Any, **kw: Any) -> None:
            original(worker, *args, **kw)
            if not any(isinstance(m, TracingMiddleware) for m in worker.middleware):
                worker.middleware.insert(0, middleware)

        setattr(init, _ORIGINAL_INIT, original)
        setattr(Worker, "__init__", init)  # noqa: B010  (typed as the original; mypy refuses)

    def _uninstrument(self, **kwargs: Any) -> None:
        middleware, self._middleware = self._middleware, None
        if middleware is not None and middleware in dispatch_middleware():
            remove_middleware(middleware)
        original = getattr(Worker.__init__, _ORIGINAL_INIT, None)
        if original is not None:
            setattr(Worker, "__init__", original)  # noqa: B010
