"""What ``asynctasq worker --metrics-port`` starts (the ``asynctasq.exporters`` entry point).

* One worker process: it records its metrics and serves them with its probes.
* ``--workers N``: the supervisor makes a multiprocess directory and serves the sum of its
  processes' metrics, and probes that speak for all of them; each process only records.
* Processes started separately but sharing ``PROMETHEUS_MULTIPROC_DIR``: each serves the
  sum on its own port (scrape one of them), with probes for itself.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from asynctasq.config import WorkerSettings
from asynctasq.supervisor import child_number
from asynctasq.worker.health import readiness
from asynctasq_prometheus import multiprocess
from asynctasq_prometheus.middleware import PrometheusMiddleware
from asynctasq_prometheus.server import MetricsServer

log = logging.getLogger("asynctasq.prometheus")

if TYPE_CHECKING:
    from asynctasq.worker.worker import Worker


class WorkerExporter:
    """The metrics middleware added to one worker, and its server when it serves one.

    Attributes:
        middleware: Records the worker's metrics.
        server: Serves them (None in a supervised process: the supervisor serves).
    """

    def __init__(self, middleware: PrometheusMiddleware, server: MetricsServer | None) -> None:
        self.middleware = middleware
        self.server = server

    def close(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.close()
            self.server = None


def worker_alive(middleware: PrometheusMiddleware) -> str | None:
    """None while the worker's event loop runs the middleware's heartbeat (or has not
    started yet), else how long it has been silent."""
    last = middleware.last_tick
    if last is None:
        return None
    silent = time.monotonic() - last
    if silent > multiprocess.STALE_HEARTBEAT:
        return f"event loop silent for {silent:.0f} s"
    return None


def worker_ready(middleware: PrometheusMiddleware) -> str | None:
    """None while the worker takes work (`asynctasq.worker.health.readiness`)."""
    worker = middleware.worker
    if worker is None:
        return "not started yet (connecting)"
    return readiness(worker)


def start_worker_exporter(worker: Worker) -> WorkerExporter:
    """Add the metrics middleware to `worker` and serve ``/metrics`` and the probes on
    ``worker.metrics_port`` (unless a supervisor serves them for this process).

    Raises:
        OSError: the port cannot be bound.
    """
    settings = worker.config.worker
    path = multiprocess.directory()
    middleware = PrometheusMiddleware(
        interval=settings.metrics_interval, multiprocess=path is not None
    )
    server = None
    if path is None or child_number() is None:
        registry = middleware.registry if path is None else multiprocess.Fleet(path).registry
        assert registry is not None and settings.metrics_port is not None
        server = MetricsServer(
            settings.metrics_host,
            settings.metrics_port,
            registry,
            lambda: worker_alive(middleware),
            lambda: worker_ready(middleware),
        )
    worker.middleware.append(middleware)
    return WorkerExporter(middleware, server)


class SupervisorExporter:
    """The supervisor's server over its processes' multiprocess directory.

    Attributes:
        server: Serves the sum of the processes' metrics and their probes.
        path: The multiprocess directory.
    """

    def __init__(self, server: MetricsServer, path: str, owned: bool) -> None:
        self.server = server
        self.path = path
        self._owned = owned

    def close(self) -> None:
        """Stop serving; remove the directory if it was made for this supervisor."""
        self.server.close()
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)


def start_supervisor_exporter(settings: WorkerSettings, workers: int) -> SupervisorExporter:
    """Before a supervisor forks `workers` processes: put them in multiprocess mode and
    serve their sum on ``settings.metrics_port``.

    ``PROMETHEUS_MULTIPROC_DIR`` is used when set (the files of processes no longer
    running, from an earlier run, are removed first: they would be counted again), else a
    fresh temporary directory is made and removed at `close`.

    Raises:
        OSError: the port cannot be bound.
    """
    given = multiprocess.directory()
    path = given if given is not None else str(multiprocess.fresh_directory())
    owned = given is None
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        if not owned and (removed := multiprocess.clear_stale(path)):
            log.warning(
                "removed %d metric file(s) an earlier run left in %s=%s: their counts "
                "would have been added to this run's",
                removed,
                multiprocess.DIR_VARIABLE,
                path,
            )
        multiprocess.enable(path)
        fleet = multiprocess.Fleet(path, expected=workers)
        assert settings.metrics_port is not None
        server = MetricsServer(
            settings.metrics_host, settings.metrics_port, fleet.registry, fleet.alive, fleet.ready
        )
    except BaseException:
        if owned:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return SupervisorExporter(server, path, owned)


__all__ = [
    "SupervisorExporter",
    "WorkerExporter",
    "start_supervisor_exporter",
    "start_worker_exporter",
    "worker_alive",
    "worker_ready",
]
