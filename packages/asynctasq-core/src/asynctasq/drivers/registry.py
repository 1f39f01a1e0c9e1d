"""Find driver classes by name (entry points) and build configured instances."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from asynctasq.drivers.base import Driver
from asynctasq.errors import ConfigError, MissingDependencyError, UnknownDriverError
from asynctasq.plugins import DRIVERS_GROUP, load_plugin, plugins

FIRST_PARTY_DRIVERS: dict[str, str] = {
    "redis": "asynctasq-redis",
    "postgres": "asynctasq-postgres",
    "mysql": "asynctasq-mysql",
    "sqs": "asynctasq-sqs",
    "rabbitmq": "asynctasq-rabbitmq",
    "sqlite": "asynctasq-sqlite",
}
"""Drivers we publish, with the distribution that provides each."""


def installed_drivers() -> list[str]:
    """Names of the drivers installed in this environment."""
    return sorted(plugins(DRIVERS_GROUP))


def drivers_with(capability: type) -> list[str]:
    """Names of the installed drivers whose class has `capability` (a runtime-checkable
    capability protocol such as `ResultStore`), for errors that say which driver to use.

    Asks the classes themselves, so a new driver that gains a capability is named without
    anyone editing a list. Drivers that fail to import are left out.
    """
    found = []
    for name in installed_drivers():
        try:
            cls = load_plugin(DRIVERS_GROUP, name)
        except Exception:  # a broken plugin must not hide the error being reported
            continue
        if isinstance(cls, type) and issubclass(cls, capability):
            found.append(name)
    return found


def use_one_of(capability: type) -> str:
    """``"use a driver that can (a, b, ...)"`` for `capability`, from the installed drivers."""
    # The in-memory driver lives in one process: never the advice for a real deployment.
    names = [n for n in drivers_with(capability) if n != "memory"]
    if not names:
        return "no installed driver can: install one that does"
    return f"use a driver that can ({', '.join(names)})"


def _unknown(name: str) -> UnknownDriverError:
    installed = installed_drivers()
    parts = [f"unknown driver {name!r}"]
    if name in FIRST_PARTY_DRIVERS:
        parts = [f"driver {name!r} is not installed: pip install {FIRST_PARTY_DRIVERS[name]}"]
    else:
        close = difflib.get_close_matches(name, [*FIRST_PARTY_DRIVERS, *installed], n=1)
        if close:
            parts.append(f"did you mean {close[0]!r}?")
    parts.append(f"installed drivers: {', '.join(installed) or 'none'}")
    others = [f"{n} ({d})" for n, d in FIRST_PARTY_DRIVERS.items() if n not in installed]
    if others:
        parts.append(f"available to install: {', '.join(others)}")
    return UnknownDriverError("; ".join(parts))


def driver_class(name: str) -> type[Any]:
    """The driver class registered under `name`.

    Raises:
        UnknownDriverError: nothing is registered under that name; the message lists the
            installed drivers and the package to install.
    """
    try:
        return load_plugin(DRIVERS_GROUP, name)  # type: ignore[no-any-return]
    except KeyError:
        raise _unknown(name) from None
    except ImportError as exc:
        dist = FIRST_PARTY_DRIVERS.get(name, f"the package providing driver {name!r}")
        raise MissingDependencyError(
            f"driver {name!r} failed to import ({exc}); reinstall it: pip install {dist}"
        ) from exc


def driver_settings(cls: type[Any]) -> dict[str, inspect.Parameter]:
    """The settings a driver class accepts: its constructor's keyword parameters."""
    params = inspect.signature(cls).parameters
    return {
        name: p for name, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def create_driver(name: str, settings: Mapping[str, Any] | None = None) -> Driver:
    """Build the driver `name` with `settings` (its constructor keywords).

    Raises:
        UnknownDriverError: no such driver.
        ConfigError: a setting the driver does not take, or a value it refuses.
    """
    cls = driver_class(name)
    settings = dict(settings or {})
    accepted = driver_settings(cls)
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) for driver {name!r}: {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'nothing'}"
        )
    try:
        driver = cls(**settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"driver {name!r}: {exc}") from exc
    return driver  # type: ignore[no-any-return]
