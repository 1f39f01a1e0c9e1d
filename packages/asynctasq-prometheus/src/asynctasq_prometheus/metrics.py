"""The metric families a worker exports, and their names.

Conventions (https://prometheus.io/docs/practices/naming/): base units (seconds), counters
end in ``_total``, no task ids in labels, label values bounded (`asynctasq_prometheus._labels`).
In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) each gauge says how the processes'
values combine: summed for what each process holds (tasks in flight, concurrency), the most
recent sample for what they all observe alike (queue depths), one series per live process
for per-process health.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("succeeded", "retried", "dead_lettered", "cancelled", "expired", "released")
"""The ``outcome`` label of `asynctasq_tasks_finished_total`."""
QUEUE_STATES = ("ready", "delayed", "in_flight", "dead")
"""The ``state`` label of `asynctasq_queue_tasks`."""
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
)  # fmt: skip
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """One worker process's metric families."""

    tasks_finished: Counter
    task_duration: Histogram
    task_latency: Histogram
    tasks_in_flight: Gauge
    concurrency: Gauge
    queue_tasks: Gauge
    broker_errors: Counter
    ready: Gauge
    heartbeat: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> WorkerMetrics:
        """Create the families in `registry` (None: in no registry, as multiprocess mode
        wants: the values live in its files, and a `MultiProcessCollector` reads them)."""
        return cls(
            tasks_finished=Counter(
                "asynctasq_tasks_finished",
                "Task runs that ended, by queue, task name and outcome.",
                ("queue", "task", "outcome"),
                registry=registry,
            ),
            task_duration=Histogram(
                "asynctasq_task_duration_seconds",
                "How long task runs took, from start to end (any outcome).",
                ("queue", "task"),
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            task_latency=Histogram(
                "asynctasq_task_latency_seconds",
                "From dispatch to the start of a task's first run (including any delay it "
                "was dispatched with), by the dispatching host's clock.",
                ("queue",),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            tasks_in_flight=Gauge(
                "asynctasq_tasks_in_flight",
                "Tasks the worker is handling now (sampled every 2 s).",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            concurrency=Gauge(
                "asynctasq_worker_concurrency",
                "Most tasks the worker processes run at once.",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            queue_tasks=Gauge(
                "asynctasq_queue_tasks",
                "Tasks in each of the worker's queues by state, sampled every few seconds.",
                ("queue", "state"),
                registry=registry,
                multiprocess_mode="livemostrecent",
            ),
            broker_errors=Counter(
                "asynctasq_broker_errors",
                "Calls to the broker that failed (each is retried, or left to the lease).",
                ("operation",),
                registry=registry,
            ),
            ready=Gauge(
                "asynctasq_worker_ready",
                "1 while the worker process takes work (connected, fetching), else 0.",
                registry=registry,
                multiprocess_mode="liveall",
            ),
            heartbeat=Gauge(
                "asynctasq_worker_heartbeat_timestamp_seconds",
                "When the worker process's event loop last reported (Unix time).",
                registry=registry,
                multiprocess_mode="liveall",
            ),
        )


__all__ = ["DURATION_BUCKETS", "LATENCY_BUCKETS", "OUTCOMES", "QUEUE_STATES", "WorkerMetrics"]
