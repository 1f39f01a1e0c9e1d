"""Versions of the installed AsyncTasQ distributions and the runtime, for banners and doctor."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def distribution_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cli_version() -> str:
    """The version of asynctasq-cli."""
    return distribution_version("asynctasq-cli") or "unknown"


def core_version() -> str:
    """The version of asynctasq-core."""
    return distribution_version("asynctasq-core") or "unknown"


def event_loop() -> str:
    """``uvloop 0.21.0`` when the worker will run on uvloop, else ``asyncio``."""
    uvloop = distribution_version("uvloop")
    if uvloop is None:
        return "asyncio"
    try:
        import uvloop as _  # noqa: F401
    except ImportError:
        return "asyncio"
    return f"uvloop {uvloop}"


def python() -> str:
    """``CPython 3.11.9``."""
    return f"{platform.python_implementation()} {platform.python_version()}"


__all__ = ["cli_version", "core_version", "distribution_version", "event_loop", "python"]
