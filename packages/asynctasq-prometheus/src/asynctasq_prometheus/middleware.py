"""`PrometheusMiddleware`: the worker's hooks turned into metrics.

Per task it does a few dictionary lookups and additions to plain Python counts, which a
background task adds to the Prometheus metrics every `FLUSH_INTERVAL` seconds and at
shutdown (`asynctasq_prometheus._batch`). Tasks in flight, readiness and the heartbeat are
sampled every `TICK` seconds and the queue depths every `interval` seconds, never on the
task path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from asynctasq.drivers.base import Failure
from asynctasq.errors import TaskExpiredError
from asynctasq.middleware import Middleware
from asynctasq.worker.health import readiness
from asynctasq_prometheus._batch import (
    FLUSH_INTERVAL,
    PendingHistogram,
    add_to_histogram,
    upper_bounds,
)
from asynctasq_prometheus._labels import MAX_TASK_NAMES, BoundedNames
from asynctasq_prometheus.metrics import WorkerMetrics

if TYPE_CHECKING:
    from asynctasq.worker.job import Job
    from asynctasq.worker.worker import Worker

log = logging.getLogger("asynctasq.prometheus")

DEFAULT_INTERVAL = 15.0
"""Seconds between two samples of the queue depths."""
TICK = 2.0
"""Seconds between two updates of the readiness and heartbeat gauges."""
STATS_TIMEOUT = 10.0
"""Longest wait for one sample of the queue depths."""
_EXPIRED = f"{TaskExpiredError.__module__}.{TaskExpiredError.__qualname__}"


class PrometheusMiddleware(Middleware):
    """Records a worker's tasks, queues and broker errors as Prometheus metrics.

    Add it to a `Worker` (``Worker(middleware=[PrometheusMiddleware()])``) and serve
    `registry` yourself, or let `asynctasq worker --metrics-port` do both.

    Args:
        registry: Where the metrics are registered (default: a new registry, not
            prometheus_client's global one). None in multiprocess mode.
        interval: Seconds between two samples of the queue depths (``driver.stats``).
        max_task_names: Distinct task names used as labels; later ones are ``other``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_task_names: int = MAX_TASK_NAMES,
        multiprocess: bool = False,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        if registry is None and not multiprocess:
            registry = CollectorRegistry()
        self.registry = registry
        self.interval = interval
        self.metrics = WorkerMetrics.create(registry)
        self._names = BoundedNames(max_task_names)
        # Since the last flush: counts by (queue, task, outcome), histograms by their labels.
        self._finished: dict[tuple[str, str, str], int] = {}
        self._durations: dict[tuple[str, str], PendingHistogram] = {}
        self._latencies: dict[tuple[str], PendingHistogram] = {}
        self._duration_bounds = upper_bounds(self.metrics.task_duration)
        self._latency_bounds = upper_bounds(self.metrics.task_latency)
        self._loops: list[asyncio.Task[None]] = []
        self.worker: Worker | None = None
        self.last_tick: float | None = None
        """Monotonic time the event loop last ran this middleware's heartbeat."""

    # -- worker ------------------------------------------------------------------------------
    def before_worker_boot(self, worker: Worker) -> None:
        """Start sampling the worker's queues and health."""
        self.worker = worker
        loop = asyncio.get_running_loop()
        self.metrics.concurrency.set(worker.concurrency)
        self._loops = [
            loop.create_task(self._tick(worker), name="asynctasq-metrics-tick"),
            loop.create_task(self._sample_queues(worker), name="asynctasq-metrics-queues"),
            loop.create_task(self._flush_often(), name="asynctasq-metrics-flush"),
        ]

    def after_worker_shutdown(self, worker: Worker) -> None:
        """Stop sampling; the worker is no longer ready."""
        for task in self._loops:
            task.cancel()
        self._loops = []
        self.flush()
        self.metrics.ready.set(0)

    def after_broker_error(self, worker: Worker, operation: str, exception: Exception) -> None:
        """Count a failed call to the broker."""
        self.metrics.broker_errors.labels(operation).inc()

    # -- tasks -------------------------------------------------------------------------------
    def before_process(self, job: Job) -> None:
        """Record the task's dispatch-to-start latency (first runs only)."""
        queue = job.delivery.queue
        envelope = job.envelope
        if job.delivery.attempts == 0 and envelope is not None:
            latency = time.time() - envelope.dispatched_at
            key = (queue,)
            histogram = self._latencies.get(key)
            if histogram is None:
                histogram = self._latencies[key] = PendingHistogram(self._latency_bounds)
            histogram.observe(latency if latency > 0 else 0.0)  # two hosts' clocks

    def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
        """Record the run's duration; count a success (failures are counted by what
        follows: a retry or a dead letter)."""
        queue = job.delivery.queue
        task = self._names(job.task_name)
        key = (queue, task)
        histogram = self._durations.get(key)
        if histogram is None:
            histogram = self._durations[key] = PendingHistogram(self._duration_bounds)
        histogram.observe(time.monotonic() - job.started_at)
        if exception is None:
            self._count(job, "succeeded", task)

    def after_retry(self, job: Job, exception: BaseException, delay: float) -> None:
        """Count a retry."""
        self._count(job, "retried")

    def after_dead_letter(self, job: Job, failure: Failure) -> None:
        """Count a dead letter (an expired task is counted as expired, by `after_expire`)."""
        if failure.exception_type != _EXPIRED:
            self._count(job, "dead_lettered")

    def after_cancel(self, job: Job) -> None:
        """Count a cancellation."""
        self._count(job, "cancelled")

    def after_release(self, job: Job) -> None:
        """Count a task given back at shutdown."""
        self._count(job, "released")

    def after_expire(self, job: Job) -> None:
        """Count a task taken after its expiry."""
        self._count(job, "expired")

    def _count(self, job: Job, outcome: str, task: str | None = None) -> None:
        if task is None:
            task = self._names(job.task_name)
        key = (job.delivery.queue, task, outcome)
        self._finished[key] = self._finished.get(key, 0) + 1

    def flush(self) -> None:
        """Add what the tasks since the last flush recorded to the metrics."""
        finished, self._finished = self._finished, {}
        durations, self._durations = self._durations, {}
        latencies, self._latencies = self._latencies, {}
        metrics = self.metrics
        for labels, count in finished.items():
            metrics.tasks_finished.labels(*labels).inc(count)
        for histogram, pending in (
            *((metrics.task_duration, p) for p in durations.items()),
            *((metrics.task_latency, p) for p in latencies.items()),
        ):
            add_to_histogram(histogram.labels(*pending[0]), pending[1])

    # -- sampling ----------------------------------------------------------------------------
    async def _flush_often(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()

    async def _tick(self, worker: Worker) -> None:
        while True:
            self.last_tick = time.monotonic()
            self.metrics.heartbeat.set(time.time())
            # Sampled, not counted per task: two locked updates less on every task's path.
            self.metrics.tasks_in_flight.set(worker.running)
            self.metrics.ready.set(1 if readiness(worker, self.last_tick) is None else 0)
            await asyncio.sleep(TICK)

    async def _sample_queues(self, worker: Worker) -> None:
        while True:
            await self.sample_queues(worker)
            await asyncio.sleep(self.interval)

    async def sample_queues(self, worker: Worker) -> None:
        """Set the queue-depth gauges from one ``driver.stats`` call (errors are counted)."""
        driver = worker.driver
        if driver is None:
            return
        try:
            stats = await asyncio.wait_for(driver.stats(worker.queues), STATS_TIMEOUT)
        except Exception as exc:
            self.metrics.broker_errors.labels("stats").inc()
            log.debug("sampling the queue depths failed: %s: %s", type(exc).__name__, exc)
            return
        gauge = self.metrics.queue_tasks
        for entry in stats:
            gauge.labels(entry.queue, "ready").set(entry.ready)
            gauge.labels(entry.queue, "delayed").set(entry.delayed)
            gauge.labels(entry.queue, "in_flight").set(entry.in_flight)
            gauge.labels(entry.queue, "dead").set(entry.dead)


__all__ = ["DEFAULT_INTERVAL", "PrometheusMiddleware"]
