"""Where a module named by a message would be loaded from, found without importing anything.

``importlib.util.find_spec("pkg.sub")`` imports ``pkg`` to read its ``__path__``: the code in
``pkg/__init__.py`` would run before anyone could say no. Here each level of a dotted name is
looked up with the import system's own path finders, using the parent's *spec* (its search
locations) instead of the parent module, so every file that an import would execute is known
and vetted before the first one runs.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import site
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Literal

Place = Literal["root", "installed", "stdlib", "outside", "builtin"]
"""Where a file lies: under an allowed root, in site-packages (installed), in the standard
library, elsewhere, or compiled into the interpreter (built-in or frozen)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One module an import of a dotted name would execute, and where its code lies."""

    name: str
    origin: Path | None
    place: Place


def _resolved(paths: Sequence[str]) -> tuple[Path, ...]:
    out: list[Path] = []
    for p in paths:
        try:
            path = Path(p).resolve()
        except (OSError, RuntimeError):
            continue
        if path not in out:
            out.append(path)
    return tuple(out)


def installed_dirs() -> tuple[Path, ...]:
    """site-packages directories (the interpreter's, the venv's and the user's)."""
    paths = sysconfig.get_paths()
    found = [paths[k] for k in ("purelib", "platlib") if k in paths]
    found += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if isinstance(user, str):
        found.append(user)
    return _resolved(found)


def stdlib_dirs() -> tuple[Path, ...]:
    """Directories of the standard library."""
    paths = sysconfig.get_paths()
    return _resolved([paths[k] for k in ("stdlib", "platstdlib") if k in paths])


class Places:
    """Classifies files by where they lie (allowed roots, site-packages, stdlib, elsewhere)."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = tuple(roots)
        self._installed = installed_dirs()
        self._stdlib = stdlib_dirs()

    def of(self, path: Path) -> Place:
        """Where `path` (already resolved) lies.

        site-packages is checked first because it often lies inside the standard library's
        directory; the standard library before the roots because a root may be ``/``.
        """
        if any(path.is_relative_to(d) for d in self._installed):
            return "installed"
        if any(path.is_relative_to(d) for d in self._stdlib):
            return "stdlib"
        if any(path.is_relative_to(r) for r in self.roots):
            return "root"
        return "outside"

    def under_roots(self, path: Path) -> bool:
        """Whether `path` lies under an allowed root (and not in the standard library)."""
        return self.of(path) == "root"


def _spec(name: str, search: Sequence[str] | None) -> ModuleSpec | None:
    if search is None:
        # Top level: the full meta path (editable-install finders included); a top-level
        # lookup has no parent to import.
        return importlib.util.find_spec(name)
    return importlib.machinery.PathFinder.find_spec(name, list(search))


def _origin(spec: ModuleSpec) -> Path | None:
    origin = spec.origin
    if origin in (None, "built-in", "frozen", "namespace"):
        return None
    try:
        return Path(origin).resolve()
    except (OSError, RuntimeError):
        return None


def steps(module: str, places: Places) -> tuple[list[Step], bool]:
    """The modules an import of `module` would execute, first to last, and whether all of
    them were found (False: the import would fail after executing the steps listed).

    Modules already imported are left out (importing them again runs nothing). Namespace
    packages have no code; they appear with the first of their directories as origin. The
    steps found before a missing one are returned too: a parent that exists must be vetted
    even when the module does not (``this.missing`` would still import ``this``).

    Raises:
        ValueError: a finder refused the name (it is not a module name).
    """
    parts = module.split(".")
    out: list[Step] = []
    search: Sequence[str] | None = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        loaded = sys.modules.get(name)
        if loaded is not None:
            search = getattr(loaded, "__path__", None)
            if search is None and i < len(parts) - 1:
                return out, False  # a module, not a package: it has no submodules
            continue
        spec = _spec(name, search)
        if spec is None:
            return out, False
        locations = spec.submodule_search_locations
        origin = _origin(spec)
        if spec.origin in ("built-in", "frozen"):
            out.append(Step(name, None, "builtin"))
        elif origin is None and locations:
            first = _resolved(list(locations))
            place = places.of(first[0]) if first else "outside"
            out.append(Step(name, first[0] if first else None, place))
        elif origin is None:
            out.append(Step(name, None, "outside"))
        else:
            out.append(Step(name, origin, places.of(origin)))
        if i < len(parts) - 1:
            if locations is None:
                return out, False
            search = list(locations)
    return out, True
