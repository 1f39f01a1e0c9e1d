"""Model instances as task arguments: how ORM plugins name model classes on the wire, import
them back only through the worker's import guard, and what happens when a row is gone.

Shared by the ORM packages (SQLAlchemy, Django, Tortoise) so that they behave the same: one
class reference format, one import path through the guard, one missing-row policy
(``"error"``: fail the task for good with `ModelNotFoundError`; ``"none"``: pass None),
set per model with ``_asynctasq_on_missing`` or for all with `set_default_on_missing`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final, Literal, get_args

from asynctasq.core.registry import module_name
from asynctasq.errors import ModelNotFoundError
from asynctasq.serializer.errors import DeserializationError
from asynctasq.serializer.guard import MAX_REF_LENGTH, get_import_guard, import_module

_resolved: dict[tuple[str, str], tuple[object, type]] = {}
"""``(tag, ref) -> (guard in force when it was resolved, class)``: the guard runs once per class."""


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
        cached = _resolved.get((tag, ref))
        if cached is not None and cached[0] is guard:
            return cached[1]
    else:
        raise _error(tag, ref, "the reference is not a str")
    if len(ref) > MAX_REF_LENGTH:
        raise _error(tag, ref[:100], f"too long ({len(ref)} characters)")
    module, sep, qualname = ref.partition(":")
    if not sep or not module or not qualname:
        raise _error(tag, ref, "expected 'module:qualname'")
    if guard is not None:
        try:
            guard(module)
        except BaseException as exc:  # a guard, like an import, must never end the worker
            reason = f"import of module {module!r} refused by the import guard: {exc}"
            raise _error(tag, ref, reason) from exc
    try:
        target: object = import_module(module)
        for part in qualname.split("."):
            target = inspect.getattr_static(target, part)  # no module __getattr__ runs
    except BaseException as exc:  # SystemExit included: a module named by a payload must not
        # end the worker
        raise _error(tag, ref, f"{type(exc).__name__}: {str(exc)[:500]}") from exc
    if not (isinstance(target, type) and is_model(target)):
        raise _error(tag, ref, f"it is not a {tag} model class")
    _resolved[(tag, ref)] = (guard, target)
    return target


# -- a row that is gone ---------------------------------------------------------------------

OnMissing = Literal["error", "none"]
"""``"error"``: dead-letter the task with `ModelNotFoundError`; ``"none"``: pass None."""

ATTRIBUTE: Final = "_asynctasq_on_missing"
"""Class attribute, looked up through the MRO (a base model class may set it for all)."""

_POLICIES: Final = frozenset(get_args(OnMissing))
_default: OnMissing = "error"


def _checked(policy: object, where: str) -> OnMissing:
    if policy not in _POLICIES:
        raise ValueError(f"{where} must be one of {sorted(_POLICIES)}, got {policy!r}")
    return policy  # type: ignore[return-value]  # checked against the Literal's values


def set_default_on_missing(policy: OnMissing) -> OnMissing:
    """Set the policy for models that do not set ``_asynctasq_on_missing`` themselves.

    Args:
        policy: ``"error"`` (the default) or ``"none"``.

    Returns:
        The previous default.

    Raises:
        ValueError: ``policy`` is not a known policy.
    """
    global _default
    previous, _default = _default, _checked(policy, "the default on-missing policy")
    return previous


def on_missing(model: type) -> OnMissing:
    """The policy in force for ``model``.

    Raises:
        ValueError: The model's ``_asynctasq_on_missing`` is not a known policy.
    """
    return _checked(getattr(model, ATTRIBUTE, _default), f"{model.__qualname__}.{ATTRIBUTE}")


def missing(model: type, ref: str, pk: Any) -> None:
    """Apply the policy for a row that was not found: raise, or return None to pass on.

    Raises:
        ModelNotFoundError: The policy is ``"error"``.
    """
    if on_missing(model) == "error":
        raise ModelNotFoundError(ref, pk)
