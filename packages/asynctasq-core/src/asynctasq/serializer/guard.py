"""Payload-driven imports (Enum classes named on the wire) and the guard that vets them.

A payload names the Enum class of a member as ``"module:qualname"``; decoding imports that
module. Because payloads come from the queue, the worker installs a guard that refuses
modules outside the roots it allows; by default every module is allowed.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from collections.abc import Callable
from enum import Enum

from asynctasq.core.registry import module_name

from .errors import DecodeFailure

MAX_REF_LENGTH = 500
"""Longest ``module:qualname`` a payload may name (real ones are far shorter)."""

ImportGuard = Callable[[str], None]
"""Called with a module name before it is imported for decoding; raises to refuse it."""

_guard: ImportGuard | None = None
_lock = threading.Lock()
_enum_classes: dict[str, type[Enum]] = {}
"""Classes already resolved under the current guard: the guard runs once per class."""


def set_import_guard(guard: ImportGuard | None) -> ImportGuard | None:
    """Install the function that vets every module a payload asks to import.

    The guard is called with the module name (``"app.models"``) before the module is
    imported; it refuses by raising any exception, which decoding reports as a
    `DeserializationError` whose ``__cause__`` is the guard's exception. ``None`` allows
    everything (the default).

    Args:
        guard: The new guard, or None.

    Returns:
        The guard that was installed before, so callers can restore it.
    """
    global _guard
    with _lock:
        previous, _guard = _guard, guard
        _enum_classes.clear()
    return previous


def get_import_guard() -> ImportGuard | None:
    """The guard currently installed (None when every module is allowed)."""
    return _guard


def enum_class_ref(cls: type[Enum]) -> str | None:
    """``"module:qualname"`` for ``cls``, or None when an importer could not find it."""
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        return None
    return f"{module_name(cls.__module__)}:{qualname}"


def import_module(module: str) -> object:
    """`module`, imported unless it is loaded (call the guard first).

    A module named after the dispatching script resolves to ``__main__`` when that script
    runs the worker itself.
    """
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    if module == module_name("__main__"):
        # Defined in the dispatching script, decoded in the same process (a worker started
        # by that script): the script is loaded as ``__main__``, not under its module name.
        return sys.modules["__main__"]
    return importlib.import_module(module)


def import_enum_class(ref: object) -> type[Enum]:
    """Resolve ``"module:qualname"`` to an Enum class, asking the guard first.

    Raises:
        DecodeFailure: The reference is malformed, refused, not importable or not an Enum.
    """
    if not isinstance(ref, str):
        raise DecodeFailure(f"enum class reference must be a str, got {type(ref).__name__}")
    if len(ref) > MAX_REF_LENGTH:
        raise DecodeFailure(f"enum class reference too long ({len(ref)} characters)")
    cached = _enum_classes.get(ref)
    if cached is not None:
        return cached
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise DecodeFailure(f"malformed enum class reference {ref!r}")
    guard = _guard
    if guard is not None:
        try:
            guard(module_name)
        except BaseException as exc:  # a guard, like an import, must never end the worker
            raise DecodeFailure(
                f"import of module {module_name!r} (for enum {ref!r}) refused by the import "
                f"guard: {type(exc).__name__}: {exc}"
            ) from exc
    try:
        target: object = import_module(module_name)
        for part in qualname.split("."):
            target = inspect.getattr_static(target, part)  # no module __getattr__ runs
    except BaseException as exc:  # SystemExit included: a module named by a payload must not
        # end the worker; `import_enum_class` runs while a message is decoded.
        raise DecodeFailure(
            f"cannot import enum class {ref!r}: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(target, type) and issubclass(target, Enum)):
        # Only Enum classes are ever called with payload data: a reference to any other
        # callable is refused rather than invoked.
        raise DecodeFailure(f"{ref!r} is not an Enum class")
    with _lock:
        if _guard is guard:
            _enum_classes[ref] = target
    return target
