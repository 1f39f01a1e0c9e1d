"""The driver a dispatch or a worker uses: by name from the configuration, or given.

Drivers built from a name are cached per event loop (their connections belong to the loop
that opened them), so `asyncio.run()` called twice in one process gets fresh connections.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from asynctasq.config import Config, get_config
from asynctasq.drivers.base import Driver
from asynctasq.drivers.registry import create_driver, installed_drivers
from asynctasq.errors import ConfigError

log = logging.getLogger("asynctasq")

EMBEDDED_DEFAULT = "sqlite"

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], Driver]] = (
    weakref.WeakKeyDictionary()
)
_connected: weakref.WeakSet[Any] = weakref.WeakSet()


def default_driver_name(config: Config | None = None) -> str:
    """The configured driver, or the embedded default when none is configured."""
    config = config or get_config()
    if config.driver:
        return config.driver
    if EMBEDDED_DEFAULT in installed_drivers():
        return EMBEDDED_DEFAULT
    raise ConfigError(
        "no driver configured and the embedded default is not installed: "
        "pip install asynctasq-sqlite, or configure one "
        "(init({'driver': 'redis'}) or ASYNCTASQ_DRIVER=redis)"
    )


def build_driver(name: str | None = None, config: Config | None = None) -> Driver:
    """A new, unconnected driver built from the configuration."""
    config = config or get_config()
    name = name or default_driver_name(config)
    return create_driver(name, config.driver_settings(name))


async def ensure_connected(driver: Driver) -> Driver:
    """Connect `driver` once; later calls cost a set lookup."""
    try:
        if driver in _connected:
            return driver
    except TypeError:  # unhashable / not weak-referenceable: just connect (idempotent)
        await driver.connect()
        return driver
    await driver.connect()
    _connected.add(driver)
    return driver


def forget_connected(driver: Driver) -> None:
    """Mark `driver` as closed so the next use connects it again."""
    _connected.discard(driver)


async def get_driver(spec: str | Driver | None = None) -> Driver:
    """The connected driver for a dispatch: an instance as is, a name from the config."""
    if spec is not None and not isinstance(spec, str):
        return await ensure_connected(spec)
    config = get_config()
    name = spec or default_driver_name(config)
    loop = asyncio.get_running_loop()
    cache = _by_loop.setdefault(loop, {})
    key = (name, config.version)
    driver = cache.get(key)
    if driver is None:
        driver = cache[key] = build_driver(name, config)
    return await ensure_connected(driver)


async def close_drivers() -> None:
    """Close the drivers this event loop built from names."""
    loop = asyncio.get_running_loop()
    for driver in _by_loop.pop(loop, {}).values():
        forget_connected(driver)
        try:
            await driver.close()
        except Exception:  # closing is best effort at shutdown
            log.debug("closing %r failed", driver, exc_info=True)
