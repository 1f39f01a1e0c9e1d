"""Task names: how a message names its code, and where the worker finds it.

A task is named ``module:qualname``. A task defined in a script run as ``__main__`` is named
after the module that script is when imported (``python app.py`` -> ``app``), so a worker
started in the same directory finds it by importing the script.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

_tasks: dict[str, Any] = {}
_from_main: set[str] = set()
_script: list[str] | None = None


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
    if obj.__module__ == "__main__":
        _from_main.add(name)
    return name


def script_of(name: str) -> list[str] | None:
    """Where the script defining task `name` lies, if it is defined in ``__main__``.

    ``[absolute path, path relative to this process's working directory]``: a worker that
    cannot import the script under its module name (the script was run from another
    directory) loads that file instead, when it lies under the worker's allowed roots.
    """
    global _script
    if name not in _from_main:
        return None
    if _script is None:
        path = getattr(sys.modules.get("__main__"), "__file__", None)
        if not path:
            return None
        file = Path(path).resolve()
        try:
            relative = os.path.relpath(file, Path.cwd())
        except ValueError:  # another drive (Windows)
            relative = str(file)
        _script = [str(file), relative]
    return _script


def registered(name: str) -> Any | None:
    """The task registered under `name` in this process, if any."""
    return _tasks.get(name)
