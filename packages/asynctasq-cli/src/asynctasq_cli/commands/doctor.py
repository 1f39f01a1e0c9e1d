"""``asynctasq doctor``: what is installed, the configuration in effect, and whether the
configured broker answers. Exits 1 when anything is wrong, so it can gate a deployment.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from asynctasq.config import read_dotenv, stray_variables
from asynctasq.core.resolver import default_roots
from asynctasq.drivers.registry import FIRST_PARTY_DRIVERS, driver_class, driver_settings
from asynctasq.plugins import (
    CLI_GROUP,
    DRIVERS_GROUP,
    SERIALIZER_HOOKS_GROUP,
    load_plugin,
    plugins,
)
from asynctasq.runner import run
from asynctasq_cli import plugins as cli_plugins
from asynctasq_cli import session
from asynctasq_cli.output import describe, literal, print_json, reporting_errors, stdout
from asynctasq_cli.redact import redact_setting
from asynctasq_cli.settings import (
    ConnectionOptions,
    LoadedConfig,
    load_config,
    takes_connection,
)
from asynctasq_cli.status import EMBEDDED_NOTE
from asynctasq_cli.versions import cli_version, core_version, event_loop, python


@dataclass(slots=True)
class PluginRow:
    """One installed plugin and whether it loads."""

    group: str
    name: str
    distribution: str | None
    version: str | None
    target: str
    error: str | None = None


@dataclass(slots=True)
class Report:
    """Everything doctor found; `problems` lists what makes it exit 1.

    `ignored_variables` are ``ASYNCTASQ_*`` variables that name no setting and do not look
    like a misspelt one (another tool's, probably): shown, not counted as problems.
    """

    versions: dict[str, str]
    plugins: list[PluginRow] = field(default_factory=list)
    driver: str | None = None
    embedded_default: bool = False
    settings: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    connectivity: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    ignored_variables: list[str] = field(default_factory=list)
    task_code_roots: list[str] = field(default_factory=list)
    """Where a worker started here may import task code from (besides installed packages):
    the working directory or ``worker.allowed_roots``, and every ``PYTHONPATH`` entry."""


def check_plugins(report: Report) -> None:
    """Load every plugin of every group, recording which distribution supplied it."""
    for group in (DRIVERS_GROUP, CLI_GROUP, SERIALIZER_HOOKS_GROUP):
        for name, info in plugins(group).items():
            row = PluginRow(group, name, info.distribution, info.version, info.target)
            if group == CLI_GROUP:
                row.error = cli_plugins.load(name).error
            else:
                try:
                    driver_class(name) if group == DRIVERS_GROUP else load_plugin(group, name)
                except Exception as exc:
                    row.error = describe(exc)
            if row.error:
                report.problems.append(f"plugin {name!r} ({group}) does not load: {row.error}")
            report.plugins.append(row)


def _source(section: str, key: str, loaded: LoadedConfig, dotenv: dict[str, str]) -> str:
    cli = loaded.cli_settings
    section_values = cli.get(section)
    if (isinstance(section_values, dict) and key in section_values) or f"{section}_{key}" in cli:
        return "command line"
    variable = f"ASYNCTASQ_{section}_{key}".upper()
    if variable in os.environ:
        return "environment"
    if variable in dotenv:
        return ".env"
    return "default"


def settings_in_effect(
    loaded: LoadedConfig, dotenv: dict[str, str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every setting of the driver, ``worker`` and ``task_defaults``, masked, with its source."""
    config = loaded.config
    sections: dict[str, dict[str, Any]] = {}
    try:
        params = driver_settings(driver_class(loaded.driver_name))
        defaults = {
            n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty
        }
    except Exception:  # reported by the plugin check
        defaults = {}
    sections[loaded.driver_name] = {**defaults, **config.driver_settings(loaded.driver_name)}
    sections["worker"] = dataclasses.asdict(config.worker)
    sections["task_defaults"] = dataclasses.asdict(config.task_defaults)
    return {
        section: {
            key: {
                "value": redact_setting(key, value),
                "source": _source(section, key, loaded, dotenv),
            }
            for key, value in values.items()
        }
        for section, values in sections.items()
    }


async def check_connectivity(loaded: LoadedConfig, timeout: float) -> dict[str, Any]:
    """Connect to the configured driver and make one round-trip (list the queues)."""
    started = time.perf_counter()
    try:
        async with session.open_driver(loaded, timeout=timeout) as driver:
            queues = await driver.queue_names()
    except Exception as exc:
        return {"ok": False, "driver": session.describe_driver(loaded), "error": describe(exc)}
    return {
        "ok": True,
        "driver": session.describe_driver(loaded),
        "queues": len(queues),
        "seconds": round(time.perf_counter() - started, 3),
    }


def check_variables(report: Report, connection: ConnectionOptions) -> None:
    """Name the ``ASYNCTASQ_*`` variables (environment and ``.env``) that nothing reads."""
    try:
        strays = stray_variables(connection.env_file)
    except Exception as exc:  # an unreadable .env is reported by the configuration check
        report.problems.append(f"configuration: {describe(exc)}")
        return
    for stray in strays:
        if stray.suggestion is not None:
            report.problems.append(f"configuration: {stray.message()}")
        else:
            report.ignored_variables.append(f"{stray.name} ({stray.source})")


def diagnose(connection: ConnectionOptions, timeout: float) -> Report:
    """Run every check; never raises for a problem it can describe."""
    report = Report(
        versions={
            "python": python(),
            "asynctasq-core": core_version(),
            "asynctasq-cli": cli_version(),
            "event loop": event_loop(),
        }
    )
    check_plugins(report)
    check_variables(report, connection)
    try:
        loaded = load_config(connection, announce=False)
    except Exception as exc:
        report.problems.append(f"configuration: {describe(exc)}")
        return report
    counted = set(report.problems)
    for message in loaded.warnings:  # misspelt variables are counted above already
        if f"configuration: {message}" not in counted:
            report.problems.append(f"configuration: {message}")
    report.driver, report.embedded_default = loaded.driver_name, loaded.embedded_default
    report.task_code_roots = [str(r) for r in default_roots(loaded.config.worker.allowed_roots)]
    report.settings = settings_in_effect(loaded, read_dotenv(connection.env_file))
    report.connectivity = run(check_connectivity(loaded, timeout))
    if not report.connectivity["ok"]:
        report.problems.append(f"connectivity: {report.connectivity['error']}")
    return report


def _render(report: Report, console: Console) -> None:
    # Everything but the fixed labels is shown with `literal`: plugin metadata, settings and
    # broker errors are other people's text, never markup.
    console.print(
        "[bold]AsyncTasQ doctor[/] · "
        + " · ".join(literal(f"{k} {v}") for k, v in report.versions.items())
    )
    table = Table(title="Plugins", title_justify="left")
    for column in ("group", "name", "distribution", "version", "status"):
        table.add_column(column)
    for p in report.plugins:
        status = f"[red]broken: {literal(p.error)}[/]" if p.error else "[green]ok[/]"
        table.add_row(
            literal(p.group),
            literal(p.name),
            literal(p.distribution or p.target),
            literal(p.version or ""),
            status,
        )
    missing = [
        f"{n} ({d})"
        for n, d in FIRST_PARTY_DRIVERS.items()
        if n not in {p.name for p in report.plugins if p.group == DRIVERS_GROUP}
    ]
    console.print(table)
    if missing:
        console.print(f"[dim]Other drivers: {literal(', '.join(missing))}[/]")
    if report.driver is not None:
        note = f" ({EMBEDDED_NOTE})" if report.embedded_default else ""
        console.print(f"\n[bold]Driver in effect:[/] {literal(report.driver + note)}")
        settings = Table(title="Configuration in effect", title_justify="left")
        for column in ("setting", "value", "source"):
            settings.add_column(column)
        for section, values in report.settings.items():
            for key, entry in values.items():
                style = "" if entry["source"] == "default" else "bold"
                settings.add_row(
                    literal(f"{section}.{key}"),
                    literal(repr(entry["value"])),
                    literal(entry["source"]),
                    style=style,
                )
        console.print(settings)
    if report.task_code_roots:
        roots = literal(", ".join(report.task_code_roots))
        console.print(
            f"Task code may come from: {roots} (working directory or allowed roots, and "
            "PYTHONPATH), and installed packages"
        )
    c = report.connectivity
    if c:
        if c["ok"]:
            console.print(
                f"[green]✓[/] {literal(c['driver'])} answered in {c['seconds'] * 1000:.0f} ms "
                f"({c['queues']} queue(s))"
            )
        else:
            console.print(f"[red]✗[/] {literal(c['error'])}")
    if report.ignored_variables:
        shown = literal(", ".join(report.ignored_variables))
        console.print(f"[dim]Not AsyncTasQ settings, left alone: {shown}[/]")
    if report.problems:
        console.print(f"\n[red bold]{len(report.problems)} problem(s):[/]")
        for problem in report.problems:
            console.print(f"  [red]•[/] {literal(problem)}")
    else:
        console.print("\n[green bold]No problems found.[/]")


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to `app`."""

    @app.command(rich_help_panel="Inspect")
    @takes_connection
    def doctor(
        timeout: Annotated[
            float,
            typer.Option(
                "--timeout",
                min=0.1,
                metavar="SECONDS",
                help="How long the connectivity check may take.",
            ),
        ] = 10.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
        *,
        connection: ConnectionOptions,
    ) -> None:
        """Check drivers, plugins, configuration (masked) and the broker connection.

        Exits 1 when a plugin does not load, the configuration is invalid or the broker
        does not answer.
        """
        with reporting_errors():
            report = diagnose(connection, timeout)
            if as_json:
                print_json(dataclasses.asdict(report))
            else:
                _render(report, stdout())
            if report.problems:
                raise typer.Exit(1)


__all__ = [
    "Report",
    "check_connectivity",
    "check_variables",
    "diagnose",
    "register",
    "settings_in_effect",
]
