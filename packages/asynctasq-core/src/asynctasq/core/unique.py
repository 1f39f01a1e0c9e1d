"""Unique tasks: the key a dispatch claims, and claiming it through the driver's `ClaimStore`.

A unique task claims ``unique:<task name>:<key>`` for its new id before it is queued; a second
dispatch that finds the key held queues nothing and gets the holder's id. The worker releases
the claim when the task ends (`asynctasq.worker.claims`); its ttl frees it when a worker dies.

The key comes from the task's ``unique_key``: a function of the arguments (of the task, for
class tasks), or the name of one argument (attribute). With ``unique=True`` alone it is a
hash of all the arguments, in a canonical form: the same call gives the same key in every
process (sets and dicts in any order, arguments passed by position or by name, defaults
filled in).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from asynctasq.core.envelope import MAX_UNIQUE_KEY, UNIQUE_PREFIX
from asynctasq.core.function import FunctionTask
from asynctasq.core.options import Unique
from asynctasq.core.task import BaseTask
from asynctasq.drivers.base import ClaimStore, Driver
from asynctasq.errors import UniqueNotSupportedError
from asynctasq.serializer import to_wire
from asynctasq.serializer._tags import FROZENSET, MAP, SET, TAG_KEY, VALUE_KEY

_UNORDERED = frozenset({SET, FROZENSET, MAP})
_READABLE_KEY = 200
"""A key of at most this many printable characters is kept as it is (readable in the
broker); a longer or odd one is replaced by its hash."""


@functools.cache
def _is_claim_store(cls: type) -> bool:
    return issubclass(cls, ClaimStore)


def holds_claims(driver: Driver | None) -> bool:
    """Whether `driver` is a `ClaimStore` (cached per class: a runtime protocol check costs
    microseconds, and workers ask at the end of every unique task)."""
    return driver is not None and _is_claim_store(type(driver))


def claim_store(driver: Driver, task: str) -> ClaimStore:
    """`driver` as a `ClaimStore`.

    Raises:
        UniqueNotSupportedError: it is not one; the message names the drivers that are.
    """
    if _is_claim_store(type(driver)):
        return driver  # type: ignore[return-value]  # checked just above
    from asynctasq.drivers.registry import use_one_of

    raise UniqueNotSupportedError(
        f"{task} is a unique task, but {type(driver).__name__} cannot hold unique keys; "
        f"{use_one_of(ClaimStore)}, or drop unique/unique_key. Nothing was queued"
    )


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:40]


def _canonical(node: Any) -> Any:
    """`node` (wire form) with unordered collections sorted, so equal values hash alike."""
    if isinstance(node, list):
        return [_canonical(item) for item in node]
    if isinstance(node, dict):
        if node.get(TAG_KEY) in _UNORDERED and isinstance(node.get(VALUE_KEY), list):
            items = [_canonical(item) for item in node[VALUE_KEY]]
            items.sort(key=lambda item: orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
            return {TAG_KEY: node[TAG_KEY], VALUE_KEY: items}
        return {key: _canonical(value) for key, value in node.items()}
    return node


def _digest(value: Any, what: str) -> str:
    wire = _canonical(to_wire(value, path=what))
    return _hash(orjson.dumps(wire, option=orjson.OPT_SORT_KEYS))


def _arguments(task: BaseTask[Any]) -> dict[str, Any]:
    """The task's arguments by name (defaults filled in), or a class task's attributes."""
    if isinstance(task, FunctionTask):
        bound = task.function.signature.bind(*task.args, **task.kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)
    return task._wire_state()


def _key_part(value: Any, what: str) -> str:
    if isinstance(value, str) and len(value) <= _READABLE_KEY and value.isprintable():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "#" + _digest(value, what)


def chosen_key(
    task: BaseTask[Any], name: str, key: Callable[..., Any] | str, option: str
) -> tuple[Any, str] | None:
    """The value `key` picks from this dispatch of `task` (named `name`), with words naming it
    in errors; None when `key`, a function, returned None. `key` is the task's `option`
    (``unique_key``, ``limit_key``): the name of an argument (of an attribute, for class
    tasks), or a function of the arguments (of the task) returning a str or an int.

    Raises:
        ValueError: `key` names no argument or attribute (the message lists those there are).
        TypeError: the function returned something else than a str, an int or None.
    """
    if isinstance(key, str):
        arguments = _arguments(task)
        if key not in arguments:
            raise ValueError(
                f"{name}: {option} {key!r} names no argument or attribute of this task; "
                f"it has: {', '.join(arguments) or 'none'}"
            )
        return arguments[key], f"argument {key!r} of {name}"
    value = key(*task.args, **task.kwargs) if isinstance(task, FunctionTask) else key(task)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise TypeError(f"{name}: {option} must return a str or an int, got {value!r}")
    return value, f"the {option.replace('_', ' ')} of {name}"


def key_for(task: BaseTask[Any], name: str, unique: Unique) -> str | None:
    """The claim key of this dispatch of `task` (named `name`); None when its ``unique_key``
    function returned None (this call is not unique).

    Raises:
        ValueError, TypeError: the key cannot be made (the message says why and how).
        SerializationError: an argument cannot be hashed because it cannot be serialized.
    """
    key = unique.key
    if key is None:
        value: Any = _arguments(task)
        what = f"the arguments of {name}"
    else:
        chosen = chosen_key(task, name, key, "unique_key")
        if chosen is None:
            return None
        value, what = chosen
    part = "#" + _digest(value, what) if key is None else _key_part(value, what)
    full = f"{UNIQUE_PREFIX}{name}:{part}"
    if len(full) > MAX_UNIQUE_KEY:  # a very long task name: keep the key within bounds
        full = f"{UNIQUE_PREFIX}#{_hash(full.encode('utf-8', 'surrogatepass'))}"
    return full


def claim_ttl(unique: Unique, delay: float) -> float:
    """How long the claim is held at most: ``unique_for`` counted from when the task is due."""
    return delay + unique.ttl


async def release_all(store: ClaimStore, claims: Sequence[tuple[str, str]]) -> None:
    """Release (key, holder) claims taken for tasks that were not queued after all.

    Best effort: an error here must not hide the one that stopped the dispatch; the ttl
    frees what could not be released.
    """
    for key, holder in claims:
        # An error here must not replace the dispatch error, the one that matters.
        with contextlib.suppress(Exception):
            await store.release_claim(key, holder)


__all__ = ["chosen_key", "claim_store", "claim_ttl", "holds_claims", "key_for", "release_all"]
