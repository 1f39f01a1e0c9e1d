"""Python values -> JSON-native wire trees (and bytes).

The hot path is `_is_plain` + `_encode`: exact ``type(x) is`` checks, JSON scalars inlined in
the container loops, no path bookkeeping until something fails. Plain JSON input (the common
dispatch case) is only scanned, not copied.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from decimal import Decimal
from enum import Enum
from typing import Any, Final

import orjson

from . import _scalars, _tags, plugins
from . import registry as _registry
from .errors import EncodeFailure, SerializationError, qualified_name, short_repr
from .guard import enum_class_ref

_TAG: Final = _tags.TAG_KEY
_V: Final = _tags.VALUE_KEY
_MIN: Final = _tags.INT_MIN
_MAX: Final = _tags.INT_MAX

_SCALARS: Final[dict[type, tuple[str, Callable[[Any], Any]]]] = {
    dt.datetime: (_tags.DATETIME, _scalars.encode_datetime),
    dt.date: (_tags.DATE, _scalars.encode_date),
    dt.time: (_tags.TIME, _scalars.encode_time),
    dt.timedelta: (_tags.TIMEDELTA, _scalars.encode_timedelta),
    Decimal: (_tags.DECIMAL, _scalars.encode_decimal),
    uuid.UUID: (_tags.UUID, _scalars.encode_uuid),
    bytes: (_tags.BYTES, _scalars.encode_bytes),
    bytearray: (_tags.BYTEARRAY, _scalars.encode_bytes),
}
"""Exact types only: a subclass (say a pandas Timestamp) would come back as its base."""


class _AsyncUsage:
    """Set by the hook path while `to_wire_with_info` listens."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = False


_async_usage: ContextVar[_AsyncUsage | None] = ContextVar("asynctasq_async_usage", default=None)


def is_plain_scalar(value: Any) -> bool:
    """A JSON scalar `to_wire` returns as it is, no hook seeing it (str, bool, None, a 64-bit
    int, a finite float): a caller can skip the call and the path an error would name.
    Containers are not looked into here: `to_wire` scans them once, and names what is wrong
    in one nested too deeply."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    # Annotated locals keep mypy from seeing the comparisons on `Any` as `Any` results.
    ok: bool
    if t is int:
        ok = _MIN <= value <= _MAX
        return ok
    if t is float:
        ok = value - value == 0.0  # False for nan and ±inf only
        return ok
    return False


def _is_plain(x: Any) -> bool:
    """True when ``x`` is JSON-native already and needs no tagged node anywhere."""
    t = type(x)
    if t is dict:
        if _TAG in x:
            return False
        for k, v in x.items():
            if type(k) is not str:
                return False
            tv = type(v)
            if tv is str:
                continue
            if tv is int:
                if _MIN <= v <= _MAX:
                    continue
                return False
            if not _is_plain(v):
                return False
        return True
    if t is list:
        for v in x:
            tv = type(v)
            if tv is str:
                continue
            if tv is int:
                if _MIN <= v <= _MAX:
                    continue
                return False
            if not _is_plain(v):
                return False
        return True
    return is_plain_scalar(x)


def _encode(x: Any) -> Any:
    """Encode any value; containers are rebuilt, JSON scalars returned as they are."""
    t = type(x)
    if t is str or t is bool or x is None:
        return x
    if t is int:
        return x if _MIN <= x <= _MAX else {_TAG: _tags.INT, _V: _scalars.encode_big_int(x)}
    if t is float:
        return x if x - x == 0.0 else {_TAG: _tags.FLOAT, _V: _scalars.encode_non_finite(x)}
    if t is dict:
        if _TAG in x:
            return _encode_escaped(x)
        out: dict[str, Any] = {}
        for k, v in x.items():
            if type(k) is not str:
                return _encode_map(x)
            tv = type(v)
            if tv is str or (tv is int and _MIN <= v <= _MAX):
                out[k] = v
                continue
            try:
                out[k] = _encode(v)
            except EncodeFailure as failure:
                failure.at(f"[{short_repr(k)}]")
                raise
        return out
    if t is list:
        return _encode_items(x)
    return _encode_other(x)


def _encode_items(items: list[Any] | tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    append = out.append
    try:
        for v in items:
            tv = type(v)
            if tv is str or (tv is int and _MIN <= v <= _MAX):
                append(v)
            else:
                append(_encode(v))
    except EncodeFailure as failure:
        failure.at(f"[{len(out)}]")  # the failing item is the one not yet appended
        raise
    return out


def _encode_set(items: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return [_encode(v) for v in items]
    except EncodeFailure as failure:
        failure.at("<set item>")
        raise


def _encode_escaped(x: dict[Any, Any]) -> dict[str, Any]:
    """A dict holding the tag key as a key of its own: wrap it so it is not read as a node."""
    if any(type(k) is not str for k in x):
        return _encode_map(x)
    out: dict[str, Any] = {}
    for k, v in x.items():
        try:
            out[k] = _encode(v)
        except EncodeFailure as failure:
            failure.at(f"[{short_repr(k)}]")
            raise
    return {_TAG: _tags.DICT, _V: out}


def _encode_map(x: dict[Any, Any]) -> dict[str, Any]:
    """A dict with non-str keys: ordered ``[key, value]`` pairs, keys encoded like values."""
    pairs: list[list[Any]] = []
    for k, v in x.items():
        try:
            key = _encode(k)
        except EncodeFailure as failure:
            failure.at(f"<key {short_repr(k)}>")
            raise
        try:
            pairs.append([key, _encode(v)])
        except EncodeFailure as failure:
            failure.at(f"[{short_repr(k)}]")
            raise
    return {_TAG: _tags.MAP, _V: pairs}


def _encode_other(x: Any) -> Any:
    """Everything but plain JSON: built-in extras first, then registered types and hooks."""
    t = type(x)
    scalar = _SCALARS.get(t)
    if scalar is not None:
        tag, encode = scalar
        return {_TAG: tag, _V: encode(x)}
    if t is tuple:
        return {_TAG: _tags.TUPLE, _V: _encode_items(x)}
    if t is set:
        return {_TAG: _tags.SET, _V: _encode_set(x)}
    if t is frozenset:
        return {_TAG: _tags.FROZENSET, _V: _encode_set(x)}
    if getattr(t, "_asynctasq_plain_str", False) and isinstance(x, str):
        return str(x)  # a str subclass that asks to travel as a plain str (TaskId)
    return _encode_extension(x)


def _encode_extension(x: Any) -> Any:
    t = type(x)
    codec = _registry.codec_for_class(t)
    if codec is not None:
        try:
            payload = codec.encode(x)
        except Exception as exc:
            raise EncodeFailure(
                f"the encoder registered for {qualified_name(t)!r} (tag {codec.tag!r}) "
                f"failed: {type(exc).__name__}: {exc}",
                x,
            ) from exc
        return {_TAG: codec.tag, _V: _encode_payload(payload, codec.tag)}
    if isinstance(x, Enum):
        return _encode_enum(x)
    for hook in _registry.REGISTRY.hooks:
        try:
            matched = hook.matches(x)
        except Exception as exc:
            raise EncodeFailure(
                f"serializer hook {hook.tag!r} failed in matches() on an object of type "
                f"{qualified_name(t)!r}: {type(exc).__name__}: {exc}",
                x,
            ) from exc
        if matched:
            return _encode_hooked(x, hook)
    if plugins.ensure_discovered():
        return _encode_extension(x)  # plugins loaded now may handle it; discovery runs once
    raise EncodeFailure(_unsupported_reason(x), x)


def _encode_payload(payload: Any, tag: str) -> Any:
    try:
        return _encode(payload)
    except EncodeFailure as failure:
        failure.at(f"<{tag} payload>")
        raise


def _encode_enum(member: Enum) -> dict[str, Any]:
    cls = type(member)
    ref = enum_class_ref(cls)
    if ref is None:
        raise EncodeFailure(
            f"enum member {member!r} of {qualified_name(cls)!r}: the class is defined inside a "
            "function, so the worker could not import it; define it at module level",
            member,
        )
    try:
        value = _encode(member.value)
    except EncodeFailure as failure:
        failure.at(".value")
        raise
    return {_TAG: _tags.ENUM, _V: [ref, value]}


def _encode_hooked(x: Any, hook: Any) -> dict[str, Any]:
    tag: str = hook.tag
    try:
        payload = hook.encode(x)
    except Exception as exc:
        raise EncodeFailure(
            f"serializer hook {tag!r} failed to encode an object of type "
            f"{qualified_name(type(x))!r}: {type(exc).__name__}: {exc}",
            x,
        ) from exc
    usage = _async_usage.get()
    if usage is not None:
        usage.used = True
    return {_TAG: tag, _V: _encode_payload(payload, tag)}


def _unsupported_reason(x: object) -> str:
    t = type(x)
    reason = f"object of type {t.__qualname__!r} ({qualified_name(t)})"
    native = next((base for base in t.__mro__[1:] if base in _registry.NATIVE_TYPES), None)
    if native is not None:
        # Subclasses are not flattened to their base: they would not come back as themselves.
        base = native.__qualname__
        reason += f", a subclass of {base}: convert it to a plain {base} or"
    else:
        reason += ";"
    return (
        f"{reason} register it with asynctasq.serializer.register_type(...)"
        f"{plugins.failure_notes()}"
    )


def to_wire(value: Any, path: str = "value") -> Any:
    """Turn ``value`` into a JSON-native tree that `from_wire` turns back into an equal value.

    Types JSON cannot hold become tagged nodes ``{"__aq__": tag, "v": payload}``. Plain JSON
    input is returned as it is, not copied: serialize the tree, do not mutate it.

    Args:
        value: The value to encode.
        path: What ``value`` is, for error messages (e.g. ``"argument 'user'"``).

    Returns:
        A tree of dict (str keys), list, str, int (signed 64-bit), finite float, bool, None.

    Raises:
        SerializationError: Something in ``value`` cannot be encoded; the message names where
            (``path -> ['items'][2]``) and the type.
    """
    try:
        if _is_plain(value):
            return value
        return _encode(value)
    except EncodeFailure as failure:
        raise failure.to_error(path) from failure.__cause__
    except RecursionError:
        raise SerializationError(
            f"cannot serialize {path}: nested too deeply, or it contains itself",
            path=path,
            reason="nested too deeply, or it contains itself",
            value_type=type(value),
        ) from None


def to_wire_with_info(value: Any, path: str = "value") -> tuple[Any, bool]:
    """Like `to_wire`, and also tell whether decoding will need `from_wire_async`.

    Args:
        value: The value to encode.
        path: What ``value`` is, for error messages.

    Returns:
        ``(tree, uses_async)``; ``uses_async`` is True when a `SerializerHook` encoded part of
        the value (it may, rarely, be True without one: never False with one).

    Raises:
        SerializationError: As `to_wire`.
    """
    if not _registry.REGISTRY.hooks:
        # No hook can fire, so no bookkeeping: the common case pays one attribute check.
        tree = to_wire(value, path)
        # Hooks discovered during this very call might have encoded something.
        return tree, bool(_registry.REGISTRY.hooks)
    usage = _AsyncUsage()
    token = _async_usage.set(usage)
    try:
        tree = to_wire(value, path)
    finally:
        _async_usage.reset(token)
    return tree, usage.used


def dumps(value: Any, path: str = "value") -> bytes:
    """``orjson.dumps(to_wire(value))``.

    Args:
        value: The value to encode.
        path: What ``value`` is, for error messages.

    Returns:
        UTF-8 JSON.

    Raises:
        SerializationError: As `to_wire`, or when orjson refuses the tree (nesting deeper
            than orjson's limit).
    """
    tree = to_wire(value, path)
    try:
        return orjson.dumps(tree)
    except orjson.JSONEncodeError as exc:
        raise SerializationError(
            f"cannot serialize {path}: {exc}", path=path, reason=str(exc), value_type=type(value)
        ) from exc
