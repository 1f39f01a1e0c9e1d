"""``asynctasq worker``: run tasks until stopped (SIGTERM/SIGINT), or until the queues are
empty with ``--burst``.

Shutdown: the first SIGTERM/SIGINT stops taking work and gives running tasks
``--shutdown-timeout`` seconds to finish; what is still running then is given back to the
broker (it runs again elsewhere). A second signal gives everything back at once. Both exit 0.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.live import Live

from asynctasq.core.options import check_queue
from asynctasq.core.resolver import default_roots
from asynctasq.drivers.base import EventLog, WorkerRegistry
from asynctasq.executors.threads import stuck_task_threads
from asynctasq.runner import run
from asynctasq.schedules.claims import claim_store
from asynctasq.supervisor import child_number, supervised_pool_size
from asynctasq.worker import Worker
from asynctasq.worker.signals import ABORT_SIGNAL
from asynctasq_cli import session
from asynctasq_cli.code_options import allowed_roots_option, imports_option
from asynctasq_cli.logging import (
    LOG_LEVELS,
    LogFormat,
    configure_logging,
    parse_level,
)
from asynctasq_cli.metrics import close_quietly, start_worker_metrics
from asynctasq_cli.output import CliError, reporting_errors, stderr
from asynctasq_cli.settings import (
    ConnectionOptions,
    LoadedConfig,
    announce_held,
    cli_setting,
    load_config,
    reapply_after_imports,
    takes_connection,
)
from asynctasq_cli.status import Banner, StatusLine, summary
from asynctasq_cli.supervised import (
    pin_option,
    run_supervised,
    tag_child_logs,
    workers_option,
)
from asynctasq_cli.versions import cli_version, event_loop

log = logging.getLogger("asynctasq.cli")

_PANEL_RUN = "Worker"
_PANEL_CODE = "Task code"
_PANEL_OUTPUT = "Output"
_PANEL_OBSERVE = "Observability"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """The worker's own options, None where not given on the command line."""

    queues: tuple[str, ...] | None = None
    concurrency: int | None = None
    process_pool_size: int | None = None
    process_max_tasks_per_child: int | None = None
    thread_pool_size: int | None = None
    shutdown_timeout: float | None = None
    burst: bool = False
    imports: tuple[str, ...] | None = None
    allowed_roots: tuple[str, ...] | None = None
    heartbeat_interval: float | None = None
    events: bool | None = None
    schedules: bool | None = None
    log_tasks: bool | None = None
    health_file: str | None = None
    metrics_port: int | None = None
    metrics_host: str | None = None

    def as_settings(self) -> dict[str, Any]:
        """The ``worker`` and ``events`` sections for core's configuration (only what was
        given)."""
        names = (
            "queues",
            "concurrency",
            "process_pool_size",
            "process_max_tasks_per_child",
            "thread_pool_size",
            "shutdown_timeout",
            "imports",
            "allowed_roots",
            "heartbeat_interval",
            "schedules",
            "log_tasks",
            "health_file",
            "metrics_port",
            "metrics_host",
        )
        given = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        settings: dict[str, Any] = {"worker": given} if given else {}
        if self.events is not None:
            # In the configuration too, not only the worker's: a task that dispatches
            # another then publishes its task-enqueued event like any dispatching process.
            settings["events"] = {"enabled": self.events}
        return settings


def parse_queues(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """``['a,b', 'c']`` -> ``('a', 'b', 'c')``; None when not given.

    Raises:
        typer.BadParameter: no queue name in what was given, or a name no queue can have
            (control characters, whitespace inside, too long).
    """
    if not values:
        return None
    names = tuple(dict.fromkeys(q.strip() for v in values for q in v.split(",") if q.strip()))
    if not names:
        raise typer.BadParameter("give at least one queue name", param_hint="'--queues'")
    for name in names:
        try:
            check_queue(name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--queues'") from None
    return names


def resolve_roots(roots: Sequence[str]) -> list[Path]:
    """The allowed roots as absolute paths: `roots` (default: the working directory) and the
    directories on ``PYTHONPATH``, which the operator put there on purpose.

    Raises:
        CliError: a root is not a directory.
    """
    for root in roots:
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise CliError(f"--allowed-root {str(path)!r}: not a directory", exit_code=2)
    return default_roots(roots)


def import_modules(modules: Sequence[str], roots: Sequence[Path]) -> list[str]:
    """Put `roots` first on ``sys.path`` and import `modules` (registering their tasks).

    Returns:
        The entries added to ``sys.path``.

    Raises:
        CliError: a module cannot be imported (one line with the cause).
    """
    added = [str(r) for r in roots if str(r) not in sys.path]
    for entry in reversed(added):
        sys.path.insert(0, entry)
    importlib.invalidate_caches()
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise CliError(
                f"--import {module!r} failed: {type(exc).__name__}: {exc}"
                f" (task code roots: {', '.join(map(str, roots))})"
            ) from exc
        log.debug("imported %s", module)
    return added


class _Exit:
    """Whether the process must end without waiting for threads (see `exit_process`)."""

    hard = False


def exit_process(code: int) -> None:
    """Leave the process with `code`.

    A synchronous task still running in a thread at shutdown cannot be stopped, and Python
    waits for such threads at exit. The worker has given those tasks back already (they run
    again elsewhere), so the process exits at once instead of waiting for them.
    """
    if _Exit.hard:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


async def _serve(
    loaded: LoadedConfig, worker: Worker, banner: Banner, console: Console, live: bool
) -> None:
    driver = worker.driver
    assert driver is not None
    await session.connect(driver, loaded, session.DEFAULT_CONNECT_TIMEOUT)
    try:
        if live:
            banner.render(console)
            with Live(StatusLine(worker), console=console, refresh_per_second=4, transient=False):
                await worker.run()
        else:
            banner.log()
            await worker.run()
    finally:
        await driver.close()
    log.info("worker stopped: %s", summary(worker))
    if worker.unstoppable:
        # Their leases are no longer renewed: ending them with the process is what keeps them
        # from running twice at once. Now, before asyncio.run's teardown waits for them.
        _Exit.hard = True
        exit_process(0)
    stuck = stuck_task_threads()
    if stuck:
        log.warning(
            "%d task thread(s) still running after their tasks were given back: "
            "exiting without waiting for them",
            len(stuck),
        )
        _Exit.hard = True


class _StoppedBeforeStart(SystemExit):
    """A SIGTERM came before the worker could take it as a stop. A SystemExit: event loops
    (uvloop, asyncio) log and drop any other exception raised in a signal callback, and the
    code it interrupts must not take it for its own error."""

    def __init__(self, signum: int) -> None:
        super().__init__(0)
        self.signal_name = signal.Signals(signum).name


def _stopped_before_start(signum: int, frame: object) -> None:
    raise _StoppedBeforeStart(signum)


def run_worker(
    connection: ConnectionOptions,
    options: WorkerOptions,
    *,
    log_level: str | None,
    log_format: str | None,
    live: bool | None,
) -> None:
    """Configure, import, connect and run a worker until it stops.

    Raises:
        CliError: an import, the connection, or a setting failed (one line).
        ConfigError: an invalid setting.
    """
    _Exit.hard = False
    env_file = connection.env_file
    level = cli_setting("LOG_LEVEL", log_level, env_file, "info")
    fmt = cli_setting("LOG_FORMAT", log_format, env_file, "text").strip().lower()
    try:
        parse_level(level)
    except ValueError as exc:
        raise CliError(f"--log-level: {exc}", exit_code=2) from None
    if fmt not in ("text", "json"):
        raise CliError(f"--log-format: {fmt!r} is not one of text, json", exit_code=2)
    console = stderr()
    logs = configure_logging(level, cast(LogFormat, fmt), console)
    tag_child_logs(logs)
    added: list[str] = []
    exporter = None
    # Until the worker's own handler replaces it (its first step): a SIGTERM while the task
    # modules import or the broker connects is a stop, not the default action's kill.
    main = threading.current_thread() is threading.main_thread()
    stops = [signal.SIGTERM]
    if ABORT_SIGNAL is not None and child_number() is not None:  # the supervisor's stop now
        stops.append(ABORT_SIGNAL)
    previous = {sig: signal.signal(sig, _stopped_before_start) for sig in stops} if main else {}
    try:
        # Warnings wait for the task modules: one may choose the driver in code.
        loaded = load_config(connection, options.as_settings(), announce=False)
        settings = loaded.config.worker
        roots = resolve_roots(settings.allowed_roots)
        added = import_modules(settings.imports, roots)
        found = loaded.warnings
        loaded = reapply_after_imports(loaded)
        announce_held(found, loaded)
        try:
            driver = session.create(loaded)
            worker = Worker(
                driver,
                burst=options.burst,
                allowed_roots=[str(r) for r in roots],
                imports=list(settings.imports or ()),
                config=loaded.config,
                events=options.events,
                # Under --workers N, the pool gets its share of the CPUs unless one is set.
                process_pool_size=None if settings.process_pool_size else supervised_pool_size(),
            )
        except ValueError as exc:  # a worker setting from the environment or .env
            raise CliError(f"worker settings: {exc}", exit_code=2) from None
        if worker.schedules:
            try:
                claim_store(driver)
            except TypeError as exc:
                raise CliError(f"--schedules: {exc}", exit_code=2) from None
        events_on = worker.events and isinstance(driver, EventLog)
        refused = None
        if worker.events and not events_on:
            refused = f"{type(driver).__name__} keeps no event stream"
            log.warning("events are on, but %s: none are published", refused)
        banner = Banner(
            version=cli_version(),
            driver=session.describe_driver(loaded),
            embedded_default=loaded.embedded_default,
            embedded_file=_file_of(driver),
            queues=tuple(worker.queues),
            concurrency=worker.concurrency,
            shutdown_timeout=worker.shutdown_timeout,
            burst=options.burst,
            imports=tuple(settings.imports),
            allowed_roots=tuple(str(r) for r in roots),
            event_loop=event_loop(),
            events=events_on,
            events_refused=refused,
            heartbeat_interval=(
                worker.heartbeat_interval if isinstance(driver, WorkerRegistry) else None
            ),
        )
        show_live = console.is_terminal and fmt == "text" if live is None else live
        # Serving before connecting: /healthz answers and /readyz says why not ready yet.
        exporter = start_worker_metrics(worker)
        run(_serve(loaded, worker, banner, console, show_live))
    except _StoppedBeforeStart as stop:
        log.info("%s before start-up finished: stopped, no task taken", stop.signal_name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        close_quietly(exporter)
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)
        logs.restore()


def _file_of(driver: object) -> str | None:
    """The database file of a driver that keeps one (the embedded default's)."""
    path = getattr(driver, "path", None)
    return path if isinstance(path, str) else None


def register(app: typer.Typer) -> None:
    """Add ``worker`` to `app`."""

    @app.command(rich_help_panel="Run")
    @takes_connection
    def worker(
        queues: Annotated[
            list[str] | None,
            typer.Option(
                "--queues",
                "-q",
                metavar="NAMES",
                help="Queues to serve, comma-separated (repeatable). "
                "(env: ASYNCTASQ_WORKER_QUEUES; default: default)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        concurrency: Annotated[
            int | None,
            typer.Option(
                "--concurrency",
                "-c",
                min=1,
                help="Most tasks running at once. (env: ASYNCTASQ_WORKER_CONCURRENCY; default: 10)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        shutdown_timeout: Annotated[
            float | None,
            typer.Option(
                "--shutdown-timeout",
                min=0.0,
                metavar="SECONDS",
                help="On SIGTERM/SIGINT, how long running tasks get to finish before "
                "they are given back. (env: ASYNCTASQ_WORKER_SHUTDOWN_TIMEOUT; "
                "default: 30)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        burst: Annotated[
            bool,
            typer.Option(
                "--burst",
                help="Exit once the queues are empty (a retry it scheduled for a failed run, "
                "due within 10 s, is waited for).",
                rich_help_panel=_PANEL_RUN,
            ),
        ] = False,
        process_pool_size: Annotated[
            int | None,
            typer.Option(
                "--process-pool-size",
                min=1,
                help="Child processes for process=True tasks. "
                "(env: ASYNCTASQ_WORKER_PROCESS_POOL_SIZE; default: CPU count)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        process_max_tasks_per_child: Annotated[
            int | None,
            typer.Option(
                "--process-max-tasks-per-child",
                min=1,
                help="Replace a child process after this many tasks. "
                "(env: ASYNCTASQ_WORKER_PROCESS_MAX_TASKS_PER_CHILD; default: never)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        thread_pool_size: Annotated[
            int | None,
            typer.Option(
                "--thread-pool-size",
                min=1,
                help="Threads for synchronous tasks. (env: ASYNCTASQ_WORKER_THREAD_POOL_SIZE)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        imports: Annotated[
            list[str] | None,
            imports_option(
                "Module to import at start-up so its tasks are registered "
                "(repeatable; imported with the allowed roots on sys.path). "
                "(env: ASYNCTASQ_WORKER_IMPORTS, comma-separated)",
                panel=_PANEL_CODE,
            ),
        ] = None,
        allowed_roots: Annotated[
            list[str] | None,
            allowed_roots_option(
                "Directory task code may be imported from (repeatable). "
                "(env: ASYNCTASQ_WORKER_ALLOWED_ROOTS; default: the working "
                "directory)",
                panel=_PANEL_CODE,
            ),
        ] = None,
        log_level: Annotated[
            str | None,
            typer.Option(
                "--log-level",
                "-l",
                metavar="LEVEL",
                help=f"{' | '.join(LOG_LEVELS)} (env: ASYNCTASQ_LOG_LEVEL; default: info)",
                show_default=False,
                rich_help_panel=_PANEL_OUTPUT,
            ),
        ] = None,
        log_format: Annotated[
            str | None,
            typer.Option(
                "--log-format",
                metavar="FORMAT",
                help="text | json (env: ASYNCTASQ_LOG_FORMAT; default: text)",
                show_default=False,
                rich_help_panel=_PANEL_OUTPUT,
            ),
        ] = None,
        events: Annotated[
            bool | None,
            typer.Option(
                "--events/--no-events",
                help="Publish task and worker events (asynctasq events). "
                "(env: ASYNCTASQ_EVENTS_ENABLED; default: off)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        schedules: Annotated[
            bool | None,
            typer.Option(
                "--schedules/--no-schedules",
                help="Also run the scheduler: dispatch the schedules the imported modules "
                "declare, each tick once however many workers run it (asynctasq schedules). "
                "(env: ASYNCTASQ_WORKER_SCHEDULES; default: off)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        workers: Annotated[
            str | None,
            typer.Option(
                "--workers",
                metavar="N",
                help="Run N worker processes (or 'auto': one per CPU, as many as a container's "
                "CPU limit allows) under a supervisor that restarts them if they die; each "
                "one's process pool defaults to CPUs // N. "
                "(env: ASYNCTASQ_WORKERS; default: one worker in this process)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        pin_cpus: Annotated[
            bool | None,
            typer.Option(
                "--pin-cpus/--no-pin-cpus",
                help="With --workers: pin worker process i to the i-th CPU this command may "
                "use (Linux), for hosts that run workers and little else; task threads and "
                "process pools still use every CPU. (env: ASYNCTASQ_PIN_CPUS=true/false/auto, "
                "auto: only where the workers are one per CPU; default: off)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        heartbeat_interval: Annotated[
            float | None,
            typer.Option(
                "--heartbeat-interval",
                min=0.0,
                metavar="SECONDS",
                help="Seconds between heartbeats in the worker registry (asynctasq "
                "workers); a worker that dies unseen disappears after three. "
                "(env: ASYNCTASQ_WORKER_HEARTBEAT_INTERVAL; default: 5)",
                show_default=False,
                rich_help_panel=_PANEL_RUN,
            ),
        ] = None,
        live: Annotated[
            bool | None,
            typer.Option(
                "--live/--no-live",
                help="Live status line. (default: on a terminal with text logs)",
                show_default=False,
                rich_help_panel=_PANEL_OUTPUT,
            ),
        ] = None,
        log_tasks: Annotated[
            bool | None,
            typer.Option(
                "--log-tasks/--no-log-tasks",
                help="Log a line per task started and finished, with its duration "
                "(logger asynctasq.tasks; fields in JSON logs). "
                "(env: ASYNCTASQ_WORKER_LOG_TASKS; default: off)",
                show_default=False,
                rich_help_panel=_PANEL_OBSERVE,
            ),
        ] = None,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                "--metrics-port",
                min=0,
                max=65535,
                metavar="PORT",
                help="Serve Prometheus /metrics, /healthz and /readyz on this port "
                "(needs asynctasq-prometheus; with --workers, the sum of all processes). "
                "(env: ASYNCTASQ_WORKER_METRICS_PORT; default: off)",
                show_default=False,
                rich_help_panel=_PANEL_OBSERVE,
            ),
        ] = None,
        metrics_host: Annotated[
            str | None,
            typer.Option(
                "--metrics-host",
                metavar="ADDRESS",
                help="The address the metrics server binds; 0.0.0.0 to be scraped from "
                "other hosts. (env: ASYNCTASQ_WORKER_METRICS_HOST; default: 127.0.0.1)",
                show_default=False,
                rich_help_panel=_PANEL_OBSERVE,
            ),
        ] = None,
        health_file: Annotated[
            str | None,
            typer.Option(
                "--health-file",
                metavar="PATH",
                help="Rewrite this file every 5 s while the worker runs ('ready' or 'not "
                "ready: why'), for exec probes; removed on exit. With --workers, one file "
                "per process (PATH.N). (env: ASYNCTASQ_WORKER_HEALTH_FILE)",
                show_default=False,
                rich_help_panel=_PANEL_OBSERVE,
            ),
        ] = None,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Run tasks from the queues until stopped (or until they are empty with --burst).

        Example: asynctasq worker --queues emails,default --concurrency 20 --import myapp.tasks
        """
        with reporting_errors():
            options = WorkerOptions(
                queues=parse_queues(queues),
                concurrency=concurrency,
                process_pool_size=process_pool_size,
                process_max_tasks_per_child=process_max_tasks_per_child,
                thread_pool_size=thread_pool_size,
                shutdown_timeout=shutdown_timeout,
                burst=burst,
                imports=tuple(imports) if imports else None,
                allowed_roots=tuple(allowed_roots) if allowed_roots else None,
                heartbeat_interval=heartbeat_interval,
                events=events,
                schedules=schedules,
                log_tasks=log_tasks,
                health_file=health_file,
                metrics_port=metrics_port,
                metrics_host=metrics_host,
            )

            def serve(show_live: bool | None) -> None:
                run_worker(
                    connection, options, log_level=log_level, log_format=log_format, live=show_live
                )

            processes = workers_option(workers, connection)
            pin = pin_option(pin_cpus, processes, connection)
            if processes is None:
                serve(live)
                return
            code = run_supervised(
                processes,
                lambda: serve(False),  # one live status line per terminal, not N
                connection,
                options.as_settings(),
                burst=burst,
                pin_cpus=pin,
                log_level=log_level,
                log_format=log_format,
            )
        raise typer.Exit(code)


__all__ = [
    "WorkerOptions",
    "exit_process",
    "import_modules",
    "parse_queues",
    "register",
    "resolve_roots",
    "run_worker",
    "stuck_task_threads",
]
