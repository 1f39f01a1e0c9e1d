"""Finding task code named by a message, only where the operator allows.

A message names ``module:qualname``; anyone who can write to the broker can write one, so
the name is hostile until proven otherwise. The worker looks it up among the tasks this
process has defined; failing that it imports the module, but only after checking, *without
importing anything*, that every file the import would execute lies under the allowed roots
(the working directory and ``PYTHONPATH`` by default) or in installed packages. It never
imports a ``__main__`` or private module, nor a standard-library module the worker has not
imported itself, and what it returns is always a task: a message can never make the worker
run code the operator did not deploy.

A task defined in a script run as ``__main__`` travels with the script's location; the worker
loads that file as a module when it lies under the allowed roots.

Two kinds of refusal, because they call for different handling:

* `ForbiddenTaskError`: the name can never be run (malformed, private, outside the roots,
  not a task). Dead-lettered at once.
* `TaskNotFoundError`: the code is not there *yet* (a module not deployed on this worker, a
  task added in a newer release, an import that failed). Retried like a failed run, so a
  correctly deployed worker can take it during a rolling deploy.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from asynctasq.core import locate, registry
from asynctasq.core.function import TaskFunction
from asynctasq.core.task import BaseTask
from asynctasq.errors import ForbiddenTaskError, TaskNotFoundError

MAX_NAME_LENGTH = 500
"""Longest task or class reference accepted (real ones are far shorter)."""

_import_lock = threading.RLock()


def pythonpath_roots() -> list[Path]:
    """Directories on ``PYTHONPATH``: the operator put them there, so task code may come
    from them."""
    out: list[Path] = []
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            path = Path(entry).expanduser().resolve()
            if path.is_dir() and path not in out:
                out.append(path)
    return out


def default_roots(explicit: Sequence[str | Path] = ()) -> list[Path]:
    """The allowed roots: `explicit` ones (default: the working directory) plus
    ``PYTHONPATH``."""
    roots = [Path(r).expanduser().resolve() for r in explicit] or [Path.cwd().resolve()]
    for extra in pythonpath_roots():
        if extra not in roots:
            roots.append(extra)
    return roots


def _valid_dotted(name: str) -> bool:
    return bool(name) and all(p.isidentifier() for p in name.split("."))


def _is_task(target: Any) -> bool:
    return isinstance(target, TaskFunction) or (
        isinstance(target, type) and issubclass(target, BaseTask) and not target._abstract
    )


class TaskResolver:
    """Maps task names to task objects, importing only from allowed places.

    Args:
        allowed_roots: Directories task code may be imported from (besides installed
            packages). Default: the current working directory. Directories on
            ``PYTHONPATH`` are always added.
    """

    def __init__(self, allowed_roots: Sequence[str | Path] = ()) -> None:
        roots = default_roots(allowed_roots)
        self.allowed_roots = roots
        self._places = locate.Places(roots)
        self._cache: dict[str, Any] = {}
        self._distributions: frozenset[str] | None = None
        for root in reversed(roots):
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))

    # -- modules ---------------------------------------------------------------------------
    def check_module(self, module: str) -> None:
        """Refuse `module` unless it may be imported (the serializer's import guard).

        Raises:
            ForbiddenTaskError: the module may never be imported.
            TaskNotFoundError: it is not importable here.
        """
        if module in sys.modules:
            return  # importing it again runs nothing
        self._check_importable(module)

    def _check_importable(self, module: str) -> None:
        if len(module) > MAX_NAME_LENGTH or not _valid_dotted(module):
            raise ForbiddenTaskError(f"invalid module name {module[:100]!r}")
        if _private(module):
            raise ForbiddenTaskError(
                f"refusing to import {module!r}: a private or __main__ module is never task code"
            )
        try:
            found, complete = locate.steps(module, self._places)
        except (ImportError, ValueError) as exc:
            raise TaskNotFoundError(f"cannot locate task module {module!r}: {exc}") from None
        for step in found:  # parents first: they run even when the module is missing
            if step.place in ("root", "installed"):
                continue
            if step.place == "outside" and self._is_distribution(step.name):
                continue  # an editable install: its source lies beside the project
            raise ForbiddenTaskError(self._refusal(module, step))
        if not complete:
            raise TaskNotFoundError(
                f"task module {module!r} is not importable from the allowed roots "
                f"({self._roots_text()}) or installed packages"
            )

    def _refusal(self, module: str, step: locate.Step) -> str:
        what = "" if step.name == module else f" (its package {step.name!r})"
        if step.place in ("stdlib", "builtin"):
            return (
                f"refusing to import {module!r}{what}: a standard-library module the worker "
                "has not imported itself is never task code"
            )
        return (
            f"refusing to import task module {module!r}{what} from {step.origin}: outside the "
            f"allowed roots ({self._roots_text()})"
        )

    def _is_distribution(self, module: str) -> bool:
        if self._distributions is None:
            self._distributions = frozenset(packages_distributions())
        return module.partition(".")[0] in self._distributions

    def _roots_text(self) -> str:
        return ", ".join(map(str, self.allowed_roots))

    # -- tasks -----------------------------------------------------------------------------
    def cached(self, name: str) -> Any | None:
        """The task named `name` if it is known without importing anything, else None."""
        found = self._cache.get(name)
        if found is None:
            found = registry.registered(name)
        return found if _is_task(found) else None

    def resolve(self, name: str, script: Sequence[str] | None = None) -> Any:
        """The task function or task class named `name`.

        Args:
            name: ``module:qualname`` from the message.
            script: Where the dispatching ``__main__`` script lies (absolute path, path
                relative to the dispatcher's working directory), from the message; used only
                when `module` is not importable otherwise, and only under the allowed roots.

        Raises:
            ForbiddenTaskError: the name can never be run (malformed, refused, not a task).
            TaskNotFoundError: not found here (yet): worth retrying on a deployed worker.
        """
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        if len(name) > MAX_NAME_LENGTH:
            raise ForbiddenTaskError(f"task name too long ({len(name)} characters)")
        module, _, qualname = name.partition(":")
        target = registry.registered(name)
        if target is None:
            if "<locals>" in qualname or "<lambda>" in qualname:
                raise ForbiddenTaskError(
                    f"task {name!r} was defined inside a function or as a lambda: only the "
                    "process that defined it can run it; define the task at module level"
                )
            if not _valid_dotted(module) or not _valid_dotted(qualname):
                raise ForbiddenTaskError(f"invalid task name {name!r}")
            if any(p.startswith("__") for p in qualname.split(".")):
                raise ForbiddenTaskError(f"invalid task name {name!r}: names a dunder attribute")
            mod = self._module(module, script)
            target = registry.registered(name)
            if target is None:
                target = mod
                for attr in qualname.split("."):
                    # Static lookup: a module's __getattr__ (lazy imports) must not run for
                    # a name a message chose.
                    target = inspect.getattr_static(target, attr, None)
                    if target is None:
                        raise TaskNotFoundError(
                            f"module {module!r} has no task {qualname!r} (a task added in a "
                            "newer release than this worker runs?)"
                        )
        if not _is_task(target):
            raise ForbiddenTaskError(
                f"{name!r} is not a task (not decorated with @task nor a Task)"
            )
        self._cache[name] = target
        return target

    def _module(self, module: str, script: Sequence[str] | None) -> Any:
        loaded = sys.modules.get(module)
        if loaded is not None:
            return loaded  # what it holds must still be a task: checked by the caller
        try:
            self._check_importable(module)
        except ForbiddenTaskError:
            raise
        except TaskNotFoundError:
            path = self._script_file(module, script)
            if path is None:
                raise
            return self._load_script(module, path)
        with _import_lock:
            try:
                return importlib.import_module(module)
            except BaseException as exc:  # SystemExit included: must not end the worker
                raise TaskNotFoundError(
                    f"importing task module {module!r} failed: {type(exc).__name__}: "
                    f"{str(exc)[:500]}{_import_hint(exc)}"
                ) from exc

    # -- __main__ scripts ------------------------------------------------------------------
    def _script_file(self, module: str, script: Sequence[str] | None) -> Path | None:
        """The script file `script` points at, if it lies under the allowed roots.

        Only for a top-level module name (a script run as ``python jobs/nightly.py`` is
        named ``nightly``): loading a file under a dotted name would let its relative
        imports import a parent package the message chose.
        """
        if not script or not isinstance(script, list | tuple) or "." in module:
            return None
        stem = module.rpartition(".")[2]
        candidates: list[Path] = []
        for i, entry in enumerate(script[:2]):
            if not isinstance(entry, str) or not entry.endswith(".py") or "\x00" in entry:
                continue
            if len(entry) > 4096:
                continue
            path = Path(entry)
            if i == 0 and path.is_absolute():
                candidates.append(path)
            elif i == 1 and not path.is_absolute():
                candidates.extend(root / path for root in self.allowed_roots)
        outside: Path | None = None
        for candidate in candidates:
            try:
                resolved = candidate.resolve()
            except (OSError, RuntimeError):
                continue
            if resolved.stem != stem:
                continue
            if not self._places.under_roots(resolved):
                if outside is None and _is_file(resolved):
                    outside = candidate  # as the message gave it: links are not shown
                continue
            if resolved.is_file():
                return resolved
        if outside is not None:
            # There on this host, and never to be loaded here: no retry would change that.
            raise ForbiddenTaskError(
                f"refusing to load task script {str(outside)[:300]!r}: outside the "
                f"allowed roots ({self._roots_text()}); run the worker from the script's "
                "directory, or allow it (--allowed-root, PYTHONPATH)"
            )
        return None

    def _load_script(self, module: str, path: Path) -> Any:
        spec = importlib.util.spec_from_file_location(module, path)
        if spec is None or spec.loader is None:
            raise TaskNotFoundError(f"cannot load task script {path}")
        with _import_lock:
            loaded = sys.modules.get(module)
            if loaded is not None:
                return loaded
            mod = importlib.util.module_from_spec(spec)
            sys.modules[module] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException as exc:  # see _module
                sys.modules.pop(module, None)
                raise TaskNotFoundError(
                    f"loading task script {path} failed: {type(exc).__name__}: "
                    f"{str(exc)[:500]}{_import_hint(exc)}"
                ) from exc
        return mod


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _private(module: str) -> bool:
    """Whether a dotted name has a private part (``_x``, ``__main__``)."""
    return any(p.startswith("_") for p in module.split("."))


def _import_hint(exc: BaseException) -> str:
    """What to change when a task module fails to import because it runs its own code."""
    # Not "no running event loop": that is a module using the loop at import where none runs.
    if isinstance(exc, RuntimeError) and any(
        phrase in str(exc)
        for phrase in ("cannot be called from a running event loop", "another loop is running")
    ):
        # asyncio.run(main()) (or asynctasq's run()) at module level: the worker imports
        # the module from inside its own event loop.
        return (
            " (the module starts an event loop when imported: put that code under "
            '`if __name__ == "__main__":` so importing it only defines the tasks)'
        )
    return ""
