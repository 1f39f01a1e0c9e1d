"""Prometheus metrics and HTTP health probes for AsyncTasQ workers.

``asynctasq worker --metrics-port 9464`` serves ``/metrics``, ``/healthz`` and ``/readyz``
once this package is installed; in code, add `PrometheusMiddleware` to a `Worker` and serve
its registry (`MetricsServer`).
"""

from asynctasq_prometheus._labels import MAX_TASK_NAMES, OTHER
from asynctasq_prometheus.exporter import (
    SupervisorExporter,
    WorkerExporter,
    start_supervisor_exporter,
    start_worker_exporter,
)
from asynctasq_prometheus.metrics import OUTCOMES, QUEUE_STATES, WorkerMetrics
from asynctasq_prometheus.middleware import PrometheusMiddleware
from asynctasq_prometheus.server import MetricsServer

__all__ = [
    "MAX_TASK_NAMES",
    "OTHER",
    "OUTCOMES",
    "QUEUE_STATES",
    "MetricsServer",
    "PrometheusMiddleware",
    "SupervisorExporter",
    "WorkerExporter",
    "WorkerMetrics",
    "start_supervisor_exporter",
    "start_worker_exporter",
]
