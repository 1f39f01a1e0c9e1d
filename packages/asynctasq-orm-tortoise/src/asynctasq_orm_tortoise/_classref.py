"""Model classes named on the wire as ``module:qualname``, imported only through core's guard.

A message comes from the queue, so the module it names is vetted by the import guard the
worker installs (`asynctasq.serializer.get_import_guard`) before anything is imported, and
the object found must be a model class of this ORM: nothing is called on anything else.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType

from asynctasq.core.registry import module_name
from asynctasq.serializer import DeserializationError, get_import_guard

_resolved: dict[str, tuple[object, type]] = {}
"""``ref -> (guard in force when it was resolved, class)``: the guard runs once per class."""


def class_ref(cls: type) -> str:
    """``module:qualname`` of a model class, as the worker imports it.

    A class defined in a script run as ``__main__`` is named after the module that script is
    when imported, like task functions.

    Raises:
        TypeError: The class is defined inside a function (no importer could find it).
    """
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        raise TypeError(
            f"model class {qualname!r} is defined inside a function, so the worker could not "
            "import it; define it at module level"
        )
    return f"{module_name(cls.__module__)}:{qualname}"


def _error(tag: str, ref: object, reason: str) -> DeserializationError:
    message = f"cannot resolve model class {ref!r}: {reason}"
    return DeserializationError(message, path=f"<{tag} payload>", reason=message, tag=tag)


def malformed(tag: str, data: object) -> DeserializationError:
    """The error for a payload that is not ``[module:qualname, *primary key]``."""
    message = f"malformed {tag} model reference {data!r}: expected [module:qualname, *pk]"
    return DeserializationError(message, path=f"<{tag} payload>", reason=message, tag=tag)


def _import(module: str) -> ModuleType:
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    if module == module_name("__main__"):
        # The dispatching script itself, when the worker runs in the same process.
        return sys.modules["__main__"]
    return importlib.import_module(module)


def resolve_class(ref: object, *, tag: str, is_model: Callable[[type], bool]) -> type:
    """The model class ``ref`` names, imported only if the import guard allows its module.

    Args:
        ref: ``module:qualname`` from the payload.
        tag: The hook's tag, for error messages.
        is_model: Whether a class is a model class of this ORM.

    Raises:
        DeserializationError: The reference is malformed, refused by the guard, cannot be
            imported, or does not name a model class.
    """
    guard = get_import_guard()
    if isinstance(ref, str):
        cached = _resolved.get(ref)
        if cached is not None and cached[0] is guard:
            return cached[1]
    else:
        raise _error(tag, ref, "the reference is not a str")
    module, sep, qualname = ref.partition(":")
    if not sep or not module or not qualname:
        raise _error(tag, ref, "expected 'module:qualname'")
    if guard is not None:
        try:
            guard(module)
        except Exception as exc:
            reason = f"import of module {module!r} refused by the import guard: {exc}"
            raise _error(tag, ref, reason) from exc
    try:
        target: object = _import(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise _error(tag, ref, f"{type(exc).__name__}: {exc}") from exc
    if not (isinstance(target, type) and is_model(target)):
        raise _error(tag, ref, f"it is not a {tag} model class")
    _resolved[ref] = (guard, target)
    return target
