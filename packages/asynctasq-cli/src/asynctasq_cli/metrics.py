"""``asynctasq worker --metrics-port``: the metrics exporter from the ``asynctasq.exporters``
entry-point group (``asynctasq-prometheus``), loaded only when a port is set."""

from __future__ import annotations

from typing import Any, Protocol, cast

from asynctasq.config import WorkerSettings
from asynctasq.plugins import EXPORTERS_GROUP, load_plugin, plugins
from asynctasq.worker import Worker
from asynctasq_cli.output import EXIT_USAGE, CliError

INSTALL_HINT = "pip install asynctasq-prometheus"


class Exporter(Protocol):
    """A running exporter: `close` stops it."""

    def close(self) -> None: ...


class ExporterModule(Protocol):
    """What an ``asynctasq.exporters`` entry point loads to."""

    def start_worker_exporter(self, worker: Worker) -> Exporter: ...

    def start_supervisor_exporter(self, settings: WorkerSettings, workers: int) -> Exporter: ...


def _module() -> ExporterModule:
    installed = plugins(EXPORTERS_GROUP)
    if not installed:
        raise CliError(
            f"--metrics-port needs a metrics exporter, and none is installed: {INSTALL_HINT}",
            exit_code=EXIT_USAGE,
        )
    name = "prometheus" if "prometheus" in installed else next(iter(installed))
    try:
        return cast(ExporterModule, load_plugin(EXPORTERS_GROUP, name))
    except Exception as exc:
        raise CliError(
            f"the {name!r} metrics exporter failed to load: {type(exc).__name__}: {exc} "
            f"(reinstall it: {INSTALL_HINT})"
        ) from exc


def _bind_error(settings: WorkerSettings, exc: OSError) -> CliError:
    return CliError(
        f"--metrics-port: cannot serve on {settings.metrics_host}:{settings.metrics_port}: "
        f"{exc.strerror or exc} (choose another port or --metrics-host)",
        exit_code=EXIT_USAGE,
    )


def start_worker_metrics(worker: Worker) -> Exporter | None:
    """Start the exporter for `worker` when ``worker.metrics_port`` is set.

    Raises:
        CliError: no exporter installed, or the port cannot be bound (exit code 2).
    """
    settings = worker.config.worker
    if settings.metrics_port is None:
        return None
    module = _module()
    try:
        return module.start_worker_exporter(worker)
    except OSError as exc:
        raise _bind_error(settings, exc) from None


def start_supervisor_metrics(settings: WorkerSettings, workers: int) -> Exporter | None:
    """Before forking `workers` processes: serve their summed metrics when a port is set.

    Raises:
        CliError: no exporter installed, or the port cannot be bound (exit code 2).
    """
    if settings.metrics_port is None:
        return None
    module = _module()
    try:
        return module.start_supervisor_exporter(settings, workers)
    except OSError as exc:
        raise _bind_error(settings, exc) from None


def close_quietly(exporter: Any) -> None:
    """Close `exporter` if there is one."""
    if exporter is not None:
        exporter.close()


__all__ = ["start_supervisor_metrics", "start_worker_metrics"]
