"""What happens when a referenced row is gone: fail the task (default) or pass None."""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

from .errors import ModelNotFoundError

OnMissing = Literal["error", "none"]
"""``"error"``: dead-letter the task with `ModelNotFoundError`; ``"none"``: pass None."""

ATTRIBUTE: Final = "_asynctasq_on_missing"
"""Class attribute, looked up through the MRO (an abstract base model may set it for all)."""

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
