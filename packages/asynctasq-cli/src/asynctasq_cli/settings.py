"""From command-line options to core's configuration.

Precedence, strongest first: command line > ``ASYNCTASQ_*`` environment > ``.env`` >
defaults. Core's ``init()`` layers the last three; the command line is passed to it as the
mapping, so it wins. On the command line itself an explicit option (``--concurrency 20``)
wins over the same setting given with ``--set worker.concurrency=5``.

Connection settings on the command line:

* ``--driver redis`` picks the driver;
* ``--set redis.url=redis://h:6379/0`` sets any setting as ``SECTION.KEY=VALUE`` (sections:
  a driver's name, ``worker``, ``task_defaults``, ``events``); repeatable;
* ``--driver-option url=redis://...`` (``-o``) sets a setting of the driver in effect.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from asynctasq.config import (
    ENV_PREFIX,
    NO_DRIVER_CHOSEN,
    Config,
    ConfigWarning,
    get_config,
    init,
    merge_settings,
    read_dotenv,
    set_global_config,
)
from asynctasq.drivers.connections import EMBEDDED_DEFAULT, default_driver_name
from asynctasq.errors import ConfigError
from asynctasq_cli.output import print_warning

_HELP_PANEL = "Connection"

DriverOption = Annotated[
    str | None,
    typer.Option(
        "--driver",
        "-d",
        help="Driver name (redis, postgres, mysql, sqs, rabbitmq, sqlite, memory, ...). "
        "(env: ASYNCTASQ_DRIVER; default: the embedded sqlite)",
        show_default=False,
        rich_help_panel=_HELP_PANEL,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="SECTION.KEY=VALUE",
        help="Any setting, e.g. redis.url=redis://h:6379/0 or worker.poll_wait=0.5. "
        "Repeatable. (env: ASYNCTASQ_SECTION_KEY)",
        show_default=False,
        rich_help_panel=_HELP_PANEL,
    ),
]
DriverOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--driver-option",
        "-o",
        metavar="KEY=VALUE",
        help="A setting of the driver in effect, e.g. url=redis://h:6379/0. Repeatable.",
        show_default=False,
        rich_help_panel=_HELP_PANEL,
    ),
]
EnvFileOption = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="The .env file to read. (default: .env in the working directory)",
        show_default=False,
        dir_okay=False,
        rich_help_panel=_HELP_PANEL,
    ),
]


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """The connection options every broker command takes."""

    driver: str | None = None
    set: Sequence[str] = ()
    driver_options: Sequence[str] = ()
    env_file: Path | None = None

    @classmethod
    def from_cli(
        cls,
        driver: str | None,
        set_: Sequence[str] | None,
        driver_options: Sequence[str] | None,
        env_file: Path | None,
    ) -> ConnectionOptions:
        """Build from the typer parameters (lists may be None when not given)."""
        return cls(driver, tuple(set_ or ()), tuple(driver_options or ()), env_file)


R = TypeVar("R")

_CONNECTION_PARAMETERS = (
    ("driver", DriverOption),
    ("set_", SetOption),
    ("driver_option", DriverOptionOption),
    ("env_file", EnvFileOption),
)


def takes_connection(command: Callable[..., R]) -> Callable[..., R]:
    """Give a command the connection options (``--driver``, ``--set``, ``--driver-option``,
    ``--env-file``), declared once here, as one ``connection: ConnectionOptions`` parameter.

    Typer builds a command's options from its signature: the decorated function's signature
    has the four options in place of ``connection``, and the call builds the
    `ConnectionOptions` from them.
    """
    signature = inspect.signature(command, eval_str=True)
    if "connection" not in signature.parameters:
        raise TypeError(f"{command.__qualname__} takes no 'connection' parameter")
    kept = [p for p in signature.parameters.values() if p.name != "connection"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in _CONNECTION_PARAMETERS
    ]

    @functools.wraps(command)
    def with_connection(*args: Any, **kwargs: Any) -> R:
        given = [kwargs.pop(name, None) for name, _ in _CONNECTION_PARAMETERS]
        return command(*args, connection=ConnectionOptions.from_cli(*given), **kwargs)

    new = signature.replace(parameters=[*kept, *added])
    with_connection.__signature__ = new  # type: ignore[attr-defined]
    with_connection.__annotations__ = {p.name: p.annotation for p in new.parameters.values()} | {
        "return": signature.return_annotation
    }
    return with_connection


@dataclass(slots=True)
class LoadedConfig:
    """The configuration in effect, and how the driver was chosen.

    Attributes:
        config: What `init()` returned (also the process-wide configuration now).
        driver_name: The driver the command uses.
        embedded_default: True when no driver was configured anywhere and the embedded
            default (sqlite) was picked.
        cli_settings: The mapping built from the command line (the strongest layer).
        warnings: What core warned about while reading the configuration (variables that
            look like misspelt settings), one line each.
    """

    config: Config
    driver_name: str
    embedded_default: bool
    cli_settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _split_assignment(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{option} {text!r}: expected KEY=VALUE")
    return key, value


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``['redis.url=x', 'worker.concurrency=5']`` -> ``{'redis': {'url': 'x'}, ...}``.

    A key without a dot (``redis_url=x``) is passed on flat; core splits it.

    Raises:
        ConfigError: an item is not ``SECTION.KEY=VALUE``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, value = _split_assignment(item, "--set")
        section, dot, name = key.partition(".")
        if dot:
            if not section or not name or "." in name:
                raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE")
            bucket = out.setdefault(section, {})
            if not isinstance(bucket, dict):
                raise ConfigError(f"--set {item!r}: {section!r} is not a section")
            bucket[name] = value
        elif key == "driver":
            out["driver"] = value or None
        else:
            out[key] = value
    return out


def _init(settings: Mapping[str, Any], env_file: Path | None, found: list[str]) -> Config:
    """Core's `init()`, with its `ConfigWarning` lines added to `found` (once each)."""
    with warnings.catch_warnings(record=True) as caught:
        # "always": a warning already shown by an earlier init() in this process is still
        # this command's to report.
        warnings.simplefilter("always", ConfigWarning)
        try:
            return init(settings, dotenv=env_file, source="command line")
        finally:
            for warning in caught:
                if issubclass(warning.category, ConfigWarning):
                    if str(warning.message) not in found:
                        found.append(str(warning.message))
                else:  # not ours to handle: let the filters in effect decide
                    warnings.warn_explicit(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )


def load_config(
    options: ConnectionOptions,
    overrides: Mapping[str, Any] | None = None,
    *,
    announce: bool = True,
) -> LoadedConfig:
    """Build and install the configuration for a command.

    Args:
        options: ``--driver``, ``--set``, ``--driver-option``, ``--env-file``.
        overrides: Sections set by the command's own options (``{'worker': {...}}``); they
            win over ``--set``.
        announce: Print core's warnings (misspelt ``ASYNCTASQ_*`` variables) on stderr as
            ``warning: ...`` lines; they are in the result's `warnings` either way.

    Returns:
        The configuration in effect and the driver chosen.

    Raises:
        ConfigError: an unknown driver, section or setting, or an unusable value.
    """
    if options.env_file is not None and not options.env_file.is_file():
        raise ConfigError(f"--env-file {str(options.env_file)!r}: no such file")
    settings = parse_set(options.set)
    if options.driver is not None:
        settings["driver"] = options.driver
    merge_settings(settings, overrides or {})
    found: list[str] = []
    config = _init(settings, options.env_file, found)
    embedded = config.driver is None
    name = default_driver_name(config)
    if options.driver_options:
        driver_settings: dict[str, Any] = {}
        for item in options.driver_options:
            key, value = _split_assignment(item, "--driver-option")
            driver_settings[key] = value
        merge_settings(settings, {name: driver_settings})
        config = _init(settings, options.env_file, found)
    if announce:
        for message in found:
            print_warning(message)
    return LoadedConfig(
        config=config,
        driver_name=name,
        embedded_default=embedded and name == EMBEDDED_DEFAULT,
        cli_settings=settings,
        warnings=found,
    )


def reapply_after_imports(loaded: LoadedConfig) -> LoadedConfig:
    """Keep what imported modules configured in code, under the command line.

    A task module often configures its driver in code (``init({'driver': 'redis'})``, as the
    user guides do). When ``--import`` ran such a call, the worker uses that configuration,
    with the command line's settings still on top.
    """
    current = get_config()
    if current is loaded.config:
        return loaded
    config = set_global_config(**loaded.cli_settings) if loaded.cli_settings else current
    embedded = config.driver is None
    name = default_driver_name(config)
    return LoadedConfig(
        config=config,
        driver_name=name,
        embedded_default=embedded and name == EMBEDDED_DEFAULT,
        cli_settings=loaded.cli_settings,
    )


def announce_held(found: Sequence[str], loaded: LoadedConfig) -> None:
    """Print warnings a command held (``announce=False``) until its task modules imported.

    A module may choose the driver in code, which answers the "settings but no driver"
    warning: that one is printed only if no driver is chosen once `loaded` is in effect.
    """
    chosen = loaded.config.driver is not None
    for message in found:
        if not (chosen and NO_DRIVER_CHOSEN in message):
            print_warning(message)


def cli_setting(name: str, given: str | None, env_file: Path | None, default: str) -> str:
    """A CLI-only setting (not in core's configuration) with the same precedence.

    Args:
        name: The variable name without the prefix (``LOG_LEVEL`` -> ``ASYNCTASQ_LOG_LEVEL``).
        given: The command-line value, or None when not given.
        env_file: The ``.env`` file in use.
        default: The value when no source sets it.
    """
    if given is not None:
        return given
    variable = ENV_PREFIX + name
    if variable in os.environ:
        return os.environ[variable]
    return read_dotenv(env_file).get(variable, default)


__all__ = [
    "ConnectionOptions",
    "DriverOption",
    "DriverOptionOption",
    "EnvFileOption",
    "LoadedConfig",
    "SetOption",
    "cli_setting",
    "load_config",
    "parse_set",
    "takes_connection",
]
