"""Entry-point discovery: drivers, serializer hooks, CLI sub-commands and metrics exporters
come from packages.

The metadata scan is done once per group and cached; a plugin's code is imported only when
asked for, so installing many drivers costs nothing until one is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

DRIVERS_GROUP = "asynctasq.drivers"
SERIALIZER_HOOKS_GROUP = "asynctasq.serializer_hooks"
CLI_GROUP = "asynctasq.cli"
EXPORTERS_GROUP = "asynctasq.exporters"
"""Metrics exporters for `asynctasq worker --metrics-port` (``asynctasq-prometheus``)."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed plugin: where it points and which distribution supplied it."""

    group: str
    name: str
    target: str
    distribution: str | None
    version: str | None


@cache
def _scan(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def plugins(group: str) -> dict[str, PluginInfo]:
    """The plugins installed for `group`, by name."""
    out: dict[str, PluginInfo] = {}
    for name, ep in sorted(_scan(group).items()):
        dist = ep.dist
        out[name] = PluginInfo(
            group=group,
            name=name,
            target=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
    return out


def load_plugin(group: str, name: str) -> Any:
    """Import and return the object an entry point names; KeyError when not installed."""
    return _scan(group)[name].load()


def refresh() -> None:
    """Forget the cached scans (after installing a package at run time, or in tests)."""
    _scan.cache_clear()
