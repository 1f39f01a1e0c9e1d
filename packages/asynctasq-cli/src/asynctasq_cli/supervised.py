"""``asynctasq worker --workers N``: the command's side of `asynctasq.supervisor`.

The supervisor process loads the configuration once (a bad setting fails before any worker
starts), then forks N workers that run the same command with the same options. Each worker
tags its own log lines with its number (``[worker 2]`` in text, ``"worker": 2`` in JSON), so
every line stays one record of the format asked for. A worker exiting with code 2 (a usage
or configuration error) stops the supervisor at once: every start would fail the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, cast

import typer
from rich.logging import RichHandler

from asynctasq.config import parse_bool
from asynctasq.errors import ConfigError
from asynctasq.supervisor import Supervisor, child_number, parse_workers
from asynctasq.utils import affinity
from asynctasq_cli.logging import (
    PLAIN_FORMAT,
    JsonFormatter,
    LogFormat,
    LogSetup,
    configure_logging,
)
from asynctasq_cli.metrics import close_quietly, start_supervisor_metrics
from asynctasq_cli.output import EXIT_USAGE, CliError, reporting_errors, stderr
from asynctasq_cli.settings import ConnectionOptions, cli_setting, load_config

WORKERS_VARIABLE = "WORKERS"
"""``ASYNCTASQ_WORKERS``: the ``--workers`` value when the option is not given."""
PIN_VARIABLE = "PIN_CPUS"
"""``ASYNCTASQ_PIN_CPUS``: the ``--pin-cpus`` value when the option is not given."""


def workers_option(given: str | None, connection: ConnectionOptions) -> int | None:
    """The number of worker processes asked for (``--workers`` or ``ASYNCTASQ_WORKERS``),
    or None when neither is set (one worker, in this process, without a supervisor).

    Raises:
        CliError: not a whole number >= 1 nor ``auto`` (exit code 2).
    """
    raw = cli_setting(WORKERS_VARIABLE, given, connection.env_file, "").strip()
    if not raw:
        return None
    try:
        return parse_workers(raw)
    except ValueError as exc:
        raise CliError(f"--workers: {exc}", exit_code=EXIT_USAGE) from None


def pin_option(
    given: bool | None, workers: int | None, connection: ConnectionOptions
) -> bool | Literal["auto"]:
    """Whether to pin each worker process to a CPU (``--pin-cpus``/``--no-pin-cpus`` or
    ``ASYNCTASQ_PIN_CPUS``): True, False (the default), or ``"auto"``, which the supervisor
    turns into pinning only where the workers are one per CPU
    (`asynctasq.supervisor.sizing.fills_the_cpus`).

    Off by default: an async task's own threads and subprocesses inherit its worker's CPU
    (an ``ffmpeg`` it starts would run on one core), and the gain was measured with the
    broker on the workers' cores only.

    Raises:
        CliError: a value that is not true/false/auto, or pinning asked for without
            ``--workers`` or on a platform that cannot pin (exit code 2).
    """
    flag = None if given is None else str(given)
    raw = cli_setting(PIN_VARIABLE, flag, connection.env_file, "").strip() or "false"
    if raw.lower() == "auto":
        return "auto" if workers is not None else False
    try:
        if not parse_bool(raw, "ASYNCTASQ_PIN_CPUS"):
            return False
    except ConfigError:
        raise CliError(
            f"ASYNCTASQ_PIN_CPUS: expected true, false or auto, got {raw!r}", exit_code=EXIT_USAGE
        ) from None
    if workers is None:
        raise CliError(
            "--pin-cpus (or ASYNCTASQ_PIN_CPUS) pins the processes of --workers N to CPUs: "
            "give --workers too",
            exit_code=EXIT_USAGE,
        )
    if not affinity.supported():
        raise CliError(
            "--pin-cpus: this platform cannot pin processes to CPUs (Linux can)",
            exit_code=EXIT_USAGE,
        )
    return True


def _log_error(message: str) -> None:
    # Critical: the worker cannot run at all, and even --log-level critical must show why.
    logging.getLogger("asynctasq.cli").critical("%s", message)


class _ChildTag(logging.Filter):
    """Puts the worker's number on every record (``worker`` attribute)."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.number
        return True


def tag_child_logs(setup: LogSetup) -> None:
    """In a supervised worker, make every log line say which worker wrote it.

    JSON lines get a ``worker`` field (the formatter writes every extra attribute); text
    lines get ``[worker N]`` after the level. Outside a supervisor, nothing changes.
    """
    number = child_number()
    if number is None:
        return
    handler = setup.handler
    handler.addFilter(_ChildTag(number))
    if isinstance(handler.formatter, JsonFormatter):
        return
    if isinstance(handler, RichHandler):
        handler.setFormatter(logging.Formatter("[worker %(worker)s] %(message)s"))
    else:
        tagged = PLAIN_FORMAT.replace("%(name)s", "[worker %(worker)s] %(name)s")
        handler.setFormatter(logging.Formatter(tagged))


def run_supervised(
    workers: int,
    serve: Callable[[], None],
    connection: ConnectionOptions,
    overrides: dict[str, object],
    *,
    burst: bool,
    pin_cpus: bool | Literal["auto"] = False,
    log_level: str | None,
    log_format: str | None,
) -> int:
    """Run `serve` (one worker, as the command would) in `workers` supervised processes.

    Args:
        workers: How many worker processes.
        serve: Runs one worker until it stops; raises like the command does.
        connection: The command's connection options (to read the configuration once).
        overrides: The worker's own options as configuration sections.
        burst: The workers end by themselves once the queues are empty.
        pin_cpus: Pin each worker process to one CPU (`asynctasq.utils.affinity`); ``"auto"``
            where they are one per CPU.
        log_level: ``--log-level``.
        log_format: ``--log-format``.

    Returns:
        The supervisor's exit code (`asynctasq.supervisor.Supervisor.run`).
    """
    config = load_config(connection, overrides, announce=False).config
    level = cli_setting("LOG_LEVEL", log_level, connection.env_file, "info")
    fmt = cli_setting("LOG_FORMAT", log_format, connection.env_file, "text").strip().lower()
    if fmt not in ("text", "json"):
        raise CliError(f"--log-format: {fmt!r} is not one of text, json", exit_code=EXIT_USAGE)
    try:
        logs = configure_logging(level, cast(LogFormat, fmt), stderr())
    except ValueError as exc:
        raise CliError(f"--log-level: {exc}", exit_code=EXIT_USAGE) from None

    def child(number: int) -> int:
        # This process's copy of the supervisor's log handler also carries the worker's last
        # words (a failed import, an unreachable broker): tagged and in the format asked for,
        # like every other line, not a bare "error: ..." among them.
        tag_child_logs(logs)
        try:
            with reporting_errors(report=_log_error):
                serve()
        except typer.Exit as exc:
            return int(exc.exit_code)
        return 0

    exporter = None
    try:
        # Before the fork: the processes inherit the multiprocess mode, and one scrape of
        # the supervisor gives the sum of theirs.
        exporter = start_supervisor_metrics(config.worker, workers)
        supervisor = Supervisor(
            child,
            workers,
            shutdown_timeout=config.worker.shutdown_timeout,
            restart_clean_exits=not burst,
            fatal_exit_codes=(EXIT_USAGE,),
            pin_cpus=pin_cpus,
        )
        return supervisor.run()
    finally:
        close_quietly(exporter)
        logs.restore()


__all__ = [
    "PIN_VARIABLE",
    "WORKERS_VARIABLE",
    "pin_option",
    "run_supervised",
    "tag_child_logs",
    "workers_option",
]
