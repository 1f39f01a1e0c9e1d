"""A connected driver for one command, with errors that say which broker failed and why."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asynctasq.drivers.base import Driver
from asynctasq.drivers.connections import build_driver
from asynctasq.errors import AsyncTasQError
from asynctasq_cli.output import CliError, one_line
from asynctasq_cli.redact import redact_settings
from asynctasq_cli.settings import LoadedConfig

DEFAULT_CONNECT_TIMEOUT = 30.0


def describe_driver(loaded: LoadedConfig) -> str:
    """``redis (url=redis://h:6379/0)``: the driver and its explicit settings, secrets masked."""
    settings = redact_settings(loaded.config.driver_settings(loaded.driver_name))
    if not settings:
        return loaded.driver_name
    shown = ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
    return f"{loaded.driver_name} ({shown})"


def create(loaded: LoadedConfig, **extra: Any) -> Driver:
    """An unconnected driver built from the configuration (plus `extra` settings).

    Raises:
        ConfigError: a setting the driver refuses.
    """
    if not extra:
        return build_driver(loaded.driver_name, loaded.config)
    from asynctasq.drivers.registry import create_driver

    return create_driver(
        loaded.driver_name, {**loaded.config.driver_settings(loaded.driver_name), **extra}
    )


async def connect(driver: Driver, loaded: LoadedConfig, timeout: float) -> None:
    """Connect `driver`, turning any failure into a one-line `CliError`.

    Raises:
        CliError: the broker is unreachable, refused us, or did not answer in `timeout`.
    """
    try:
        await asyncio.wait_for(driver.connect(), timeout)
    except TimeoutError:
        raise CliError(
            f"cannot connect to {describe_driver(loaded)}: no answer within {timeout:g} s"
        ) from None
    except AsyncTasQError:
        raise
    except Exception as exc:
        raise CliError(
            f"cannot connect to {describe_driver(loaded)}: {type(exc).__name__}: {one_line(exc)}"
        ) from exc


@asynccontextmanager
async def open_driver(
    loaded: LoadedConfig, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> AsyncIterator[Driver]:
    """A connected driver for the configuration in effect, closed on exit.

    Raises:
        CliError: the connection failed (one line naming the driver and the cause).
        ConfigError: the driver's settings are invalid.
    """
    driver = create(loaded)
    try:
        await connect(driver, loaded, timeout)
        yield driver
    finally:
        # Closing is best effort; the command's outcome is what matters.
        with contextlib.suppress(Exception):
            await driver.close()


__all__ = ["DEFAULT_CONNECT_TIMEOUT", "connect", "create", "describe_driver", "open_driver"]
