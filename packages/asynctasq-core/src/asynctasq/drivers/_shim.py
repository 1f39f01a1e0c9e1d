"""Re-export a driver class from its own package, or say which package to install."""

from __future__ import annotations

import importlib
from typing import Any

from asynctasq.errors import MissingDependencyError


def require(module: str, name: str, distribution: str) -> Any:
    """`module.name`, or MissingDependencyError naming `distribution` to install."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise MissingDependencyError(
            f"{name} lives in the {distribution} package: pip install {distribution}"
        ) from None
    return getattr(mod, name)
