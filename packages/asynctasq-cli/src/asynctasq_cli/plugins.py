"""Sub-commands from other packages: the ``asynctasq.cli`` entry-point group.

Each entry point loads to a `typer.Typer` app (or a click command) mounted under the entry
point's name: ``dashboard = "asynctasq_dashboard.cli:command"`` gives ``asynctasq dashboard``.
Plugins are imported only when their command is used (or help lists them). A plugin that
fails to load never breaks the CLI: its command reports the failure, `asynctasq doctor`
lists it, and everything else works.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer
from typer.core import TyperCommand

from asynctasq.plugins import CLI_GROUP, PluginInfo, load_plugin, plugins
from asynctasq_cli.clicktypes import Command
from asynctasq_cli.output import EXIT_FAILURE, literal, one_line


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    """The outcome of loading one CLI plugin.

    Attributes:
        info: The entry point and the distribution that supplied it.
        command: The click command to mount, or None when loading failed.
        error: Why loading failed (one line), or None.
    """

    info: PluginInfo
    command: Command | None
    error: str | None


_loaded: dict[str, LoadedPlugin] = {}
PLUGIN_PANEL = "Plugins"


def plugin_names() -> list[str]:
    """Names of the installed CLI plugins (no import)."""
    return sorted(plugins(CLI_GROUP))


def _as_command(obj: object, name: str) -> Command:
    if isinstance(obj, typer.Typer):
        command = typer.main.get_command(obj)
    elif isinstance(obj, Command):
        command = obj
    else:
        raise TypeError(f"expected a typer.Typer or click command, got {type(obj).__name__}")
    command.name = name
    if hasattr(command, "rich_help_panel"):
        command.rich_help_panel = PLUGIN_PANEL
    return command


def load(name: str) -> LoadedPlugin:
    """Load the CLI plugin `name` once; failures are recorded, not raised.

    Raises:
        KeyError: no plugin of that name is installed.
    """
    if name in _loaded:
        return _loaded[name]
    info = plugins(CLI_GROUP)[name]
    try:
        command: Command | None = _as_command(load_plugin(CLI_GROUP, name), name)
        error = None
    except Exception as exc:  # a broken plugin is reported, never fatal
        command, error = None, f"{type(exc).__name__}: {one_line(exc)}"
    result = _loaded[name] = LoadedPlugin(info=info, command=command, error=error)
    return result


def load_all() -> list[LoadedPlugin]:
    """Load every installed CLI plugin (for `asynctasq doctor`)."""
    return [load(name) for name in plugin_names()]


def source(info: PluginInfo) -> str:
    """``asynctasq-postgres 0.1.0`` (or the entry point's target when unknown)."""
    if info.distribution is None:
        return info.target
    return f"{info.distribution} {info.version or ''}".strip()


def broken_command(plugin: LoadedPlugin) -> Command:
    """A stand-in command for a plugin that failed to load: it explains and exits 1."""
    message = (
        f"the {plugin.info.name!r} command from {source(plugin.info)} failed to load: "
        f"{plugin.error}; reinstall that package (see: asynctasq doctor)"
    )

    def fail() -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_FAILURE)

    return TyperCommand(
        plugin.info.name,
        callback=fail,
        # Help text is Rich markup; the import error is not.
        help=literal(f"(broken plugin from {source(plugin.info)}: {plugin.error})"),
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


def command_for(name: str) -> Command | None:
    """The command mounted as `name`, a failure stand-in, or None when not installed."""
    if name not in plugins(CLI_GROUP):
        return None
    plugin = load(name)
    return plugin.command if plugin.command is not None else broken_command(plugin)


def forget() -> None:
    """Drop loaded plugins (tests install fake ones)."""
    _loaded.clear()


__all__ = [
    "LoadedPlugin",
    "broken_command",
    "command_for",
    "forget",
    "load",
    "load_all",
    "plugin_names",
    "source",
]
