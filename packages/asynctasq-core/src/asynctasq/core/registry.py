"""Task names: how a message names its code, and where the worker finds it.

A task is named ``module:qualname``. A task defined in a script run as ``__main__`` is named
after the module that script is when imported (``python app.py`` -> ``app``), so a worker
started in the same directory finds it by importing the script.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_tasks: dict[str, Any] = {}


def _main_module_name() -> str:
    """The importable name of the ``__main__`` module ('__main__' if it has none)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name).removesuffix(".__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return "__main__"
    file = Path(path).resolve()
    for entry in sys.path:
        try:
            root = Path(entry or ".").resolve()
            relative = file.relative_to(root)
        except (OSError, ValueError):
            continue
        parts = relative.with_suffix("").parts
        if parts and all(p.isidentifier() for p in parts):
            return ".".join(parts)
    return file.stem


def module_name(module: str) -> str:
    """The name under which the worker imports `module`."""
    return _main_module_name() if module == "__main__" else module


def task_name(obj: Any) -> str:
    """``module:qualname`` for a task class or task function."""
    return f"{module_name(obj.__module__)}:{obj.__qualname__}"


def register(obj: Any) -> str:
    """Record a task so this process can find it without importing; return its name."""
    name = task_name(obj)
    _tasks[name] = obj
    return name


def registered(name: str) -> Any | None:
    """The task registered under `name` in this process, if any."""
    return _tasks.get(name)
