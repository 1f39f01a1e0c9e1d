"""The claim key a limited task's dispatch runs under: per task, or per ``limit_key``.

Made like a unique key (`asynctasq.core.unique`): ``limit:<task name>`` for a task limited
as a whole; ``limit:<task name>:<key>`` with a ``limit_key``, the key readable when it is a
short printable string or an int, a hash otherwise. Separate from `asynctasq.core.limits` so
that the option checks do not import the serializer and the task classes.
"""

from __future__ import annotations

from typing import Any

from asynctasq.core.limits import LIMIT_PREFIX, MAX_LIMIT_KEY, Limits, to_wire
from asynctasq.core.task import BaseTask
from asynctasq.core.unique import _hash, _is_claim_store, _key_part, chosen_key
from asynctasq.drivers.base import ClaimStore, Driver
from asynctasq.errors import LimitsNotSupportedError


def limit_key_for(task: BaseTask[Any], name: str, limits: Limits) -> str | None:
    """The base claim key of this dispatch of `task` (named `name`); None when its
    ``limit_key`` function returned None (this call is not limited).

    Raises:
        ValueError, TypeError: the key cannot be made (the message says why and how).
        SerializationError: the key is not a str or int and cannot be serialized to hash.
    """
    key = limits.key
    if key is None:
        full = f"{LIMIT_PREFIX}{name}"
    else:
        chosen = chosen_key(task, name, key, "limit_key")
        if chosen is None:
            return None
        value, what = chosen
        full = f"{LIMIT_PREFIX}{name}:{_key_part(value, what)}"
    if len(full) > MAX_LIMIT_KEY:  # a very long task name or key: keep the key within bounds
        full = f"{LIMIT_PREFIX}#{_hash(full.encode('utf-8', 'surrogatepass'))}"
    return full


def limits_wire(task: BaseTask[Any], name: str, limits: Limits) -> dict[str, Any] | None:
    """The envelope's ``"l"`` for this dispatch, or None when it is not limited."""
    key = limit_key_for(task, name, limits)
    return None if key is None else to_wire(key, limits)


def limit_store(driver: Driver, task: str) -> ClaimStore:
    """`driver` as the `ClaimStore` that holds `task`'s limits.

    Raises:
        LimitsNotSupportedError: it cannot hold claims; the message names the drivers that
            can.
    """
    if _is_claim_store(type(driver)):
        return driver  # type: ignore[return-value]  # checked just above
    from asynctasq.drivers.registry import use_one_of

    raise LimitsNotSupportedError(
        f"{task} has a concurrency or rate limit, but {type(driver).__name__} cannot hold "
        f"the claims that enforce it across workers; {use_one_of(ClaimStore)}, or drop "
        "concurrency_limit/rate_limit"
    )


def is_limited(task: BaseTask[Any]) -> bool:
    """Whether `task` declares a concurrency or rate limit (for the check at dispatch)."""
    options = task._class_options
    return "concurrency_limit" in options or "rate_limit" in options


__all__ = ["is_limited", "limit_key_for", "limit_store", "limits_wire"]
