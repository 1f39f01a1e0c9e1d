"""Finding task code named by a message, only where the operator allows.

A message names ``module:qualname``. The worker looks it up among the tasks this process has
defined, then imports the module through the normal import system, with the allowed roots
(default: the working directory) on ``sys.path``. A module whose file lies outside the
allowed roots and outside installed packages is refused, and so is anything that is not a
task: a message can never make the worker run arbitrary code.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asynctasq.core import registry
from asynctasq.core.function import TaskFunction
from asynctasq.core.task import BaseTask
from asynctasq.errors import TaskNotFoundError


def _installed_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    return [Path(paths[k]).resolve() for k in keys if k in paths]


class TaskResolver:
    """Maps task names to task objects, importing only from allowed places.

    Args:
        allowed_roots: Directories task code may be imported from (besides installed
            packages). Default: the current working directory.
    """

    def __init__(self, allowed_roots: Sequence[str | Path] = ()) -> None:
        roots = [Path(r).resolve() for r in allowed_roots] or [Path.cwd().resolve()]
        self.allowed_roots = roots
        self._installed = _installed_roots()
        self._cache: dict[str, Any] = {}
        for root in reversed(roots):
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))

    def check_module(self, module: str) -> None:
        """Raise TaskNotFoundError unless `module` may be imported (serializer import guard)."""
        if module in sys.modules:
            return
        if not all(p.isidentifier() for p in module.split(".")):
            raise TaskNotFoundError(f"invalid module name {module!r}")
        self._allowed_origin(module)

    def _allowed_origin(self, module: str) -> None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            raise TaskNotFoundError(f"cannot import task module {module!r}: {exc}") from None
        if spec is None:
            raise TaskNotFoundError(
                f"task module {module!r} is not importable from the allowed roots "
                f"({', '.join(map(str, self.allowed_roots))}) or installed packages"
            )
        origin = spec.origin
        if origin in (None, "built-in", "frozen"):
            return
        path = Path(origin).resolve()
        for root in (*self.allowed_roots, *self._installed):
            if path.is_relative_to(root):
                return
        if self._is_editable_install(module):
            return
        raise TaskNotFoundError(
            f"refusing to import task module {module!r} from {path}: outside the allowed roots "
            f"({', '.join(map(str, self.allowed_roots))})"
        )

    @staticmethod
    def _is_editable_install(module: str) -> bool:
        from importlib.metadata import packages_distributions

        return module.partition(".")[0] in packages_distributions()

    def resolve(self, name: str) -> Any:
        """The task function or task class named `name`.

        Raises:
            TaskNotFoundError: not found, not allowed, or not a task.
        """
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        module, _, qualname = name.partition(":")
        target = registry.registered(name)
        if target is None:
            if not qualname or not all(p.isidentifier() for p in module.split(".")):
                raise TaskNotFoundError(f"invalid task name {name!r}")
            self._allowed_origin(module)
            try:
                mod = importlib.import_module(module)
            except Exception as exc:
                raise TaskNotFoundError(
                    f"importing task module {module!r} failed: {exc!r}"
                ) from exc
            target = registry.registered(name)
            if target is None:
                target = mod
                for attr in qualname.split("."):
                    target = getattr(target, attr, None)
                    if target is None:
                        raise TaskNotFoundError(f"module {module!r} has no task {qualname!r}")
        is_task = isinstance(target, TaskFunction) or (
            isinstance(target, type) and issubclass(target, BaseTask) and not target._abstract
        )
        if not is_task:
            raise TaskNotFoundError(f"{name!r} is not a task (not decorated with @task nor a Task)")
        self._cache[name] = target
        return target
