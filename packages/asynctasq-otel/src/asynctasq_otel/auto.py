"""Importing this module instruments the process (`asynctasq_otel.instrument`).

For workers started by the CLI, which builds the worker itself::

    asynctasq worker --import asynctasq_otel.auto ...
    ASYNCTASQ_WORKER_IMPORTS=asynctasq_otel.auto asynctasq worker ...

Configure the OpenTelemetry SDK before (``opentelemetry-instrument`` does from ``OTEL_*``
variables), or in a module of your own imported first, e.g.
``--import myapp.telemetry --import asynctasq_otel.auto``. Importing it again does nothing.
"""

from __future__ import annotations

from asynctasq_otel import AsyncTasQInstrumentor

if not AsyncTasQInstrumentor().is_instrumented_by_opentelemetry:
    AsyncTasQInstrumentor().instrument()
