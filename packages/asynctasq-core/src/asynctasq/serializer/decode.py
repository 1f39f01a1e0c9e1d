"""Wire trees (and bytes) -> Python values.

The hot path is `_is_plain` + `_decode`, mirroring the encoder. Hook nodes are not decoded
here: `decode_async.from_wire_async` awaits them first and hands their results in through
`async_results`, keyed by node identity.

Trees come from the queue, so decoding is bounded (`asynctasq.serializer.limits`): a budget
per message (`Budget`, in a context variable so nested decodes share it), no set built from
members that flood one hash value, no Flag combination created past a cap, only canonical
big ints, and error messages that quote a bounded head of the offending payload.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from enum import Enum, Flag
from typing import Any, Final

import orjson

from . import _scalars, _tags, plugins
from . import registry as _registry
from .errors import DecodeFailure, DeserializationError, clip, short_repr
from .guard import import_enum_class
from .limits import MAX_EQUAL_HASHES, MAX_FLAG_COMBINATIONS, MAX_HOOK_VALUES, MAX_TAGGED_VALUES

_TAG: Final = _tags.TAG_KEY
_V: Final = _tags.VALUE_KEY

async_results: ContextVar[dict[int, Any] | None] = ContextVar(
    "asynctasq_async_results", default=None
)
"""``id(node) -> decoded object`` for the hook nodes `from_wire_async` has resolved."""


class Budget:
    """What is left of the work one message may cause (see `asynctasq.serializer.limits`)."""

    __slots__ = ("hook_values", "tagged_values")

    def __init__(self) -> None:
        self.tagged_values = MAX_TAGGED_VALUES
        self.hook_values = MAX_HOOK_VALUES


budget: ContextVar[Budget | None] = ContextVar("asynctasq_decode_budget", default=None)
"""The budget of the message being decoded. Shared by reference with nested decodes (a
registered decoder calling `from_wire`, the tasks of `from_wire_async`), so all of them count
against the one message."""


def spend_hook_value(tag: str) -> None:
    """Count one serializer-hook value found in the message being decoded.

    Raises:
        DecodeFailure: The message holds more than `MAX_HOOK_VALUES` of them.
    """
    spent = budget.get()
    if spent is None:
        return
    spent.hook_values -= 1
    if spent.hook_values < 0:
        # Each one is a concurrent task and, typically, a database query.
        raise DecodeFailure(
            f"more than {MAX_HOOK_VALUES:,} serializer-hook values in one message "
            "(see asynctasq.serializer.limits)",
            tag,
        )


def _is_plain(x: Any) -> bool:
    """True when no tagged node hides in ``x`` (then it decodes to itself)."""
    t = type(x)
    if t is dict:
        if _TAG in x:
            return False
        for v in x.values():
            tv = type(v)
            if (tv is dict or tv is list) and not _is_plain(v):
                return False
        return True
    if t is list:
        for v in x:
            tv = type(v)
            if (tv is dict or tv is list) and not _is_plain(v):
                return False
    return True


def decode_tree(x: Any) -> Any:
    t = type(x)
    if t is dict:
        if _TAG in x:
            return _decode_node(x)
        out: dict[str, Any] = {}
        for k, v in x.items():
            tv = type(v)
            if tv is not dict and tv is not list:
                out[k] = v
                continue
            try:
                out[k] = decode_tree(v)
            except DecodeFailure as failure:
                failure.at(f"[{short_repr(k)}]")
                raise
        return out
    if t is list:
        return _decode_items(x)
    return x


def _decode_items(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    append = out.append
    try:
        for v in items:
            tv = type(v)
            append(decode_tree(v) if tv is dict or tv is list else v)
    except DecodeFailure as failure:
        failure.at(f"[{len(out)}]")  # the failing item is the one not yet appended
        raise
    return out


def _expect_list(payload: Any) -> list[Any]:
    if type(payload) is not list:
        raise TypeError(f"payload must be a list, got {short_repr(payload)}")
    return payload


def _decode_tuple(payload: Any) -> tuple[Any, ...]:
    return tuple(_decode_items(_expect_list(payload)))


def _decode_set(payload: Any) -> set[Any]:
    return set(_decode_set_items(payload))


def _decode_frozenset(payload: Any) -> frozenset[Any]:
    return frozenset(_decode_set_items(payload))


def _decode_set_items(payload: Any) -> list[Any]:
    try:
        items = [decode_tree(v) for v in _expect_list(payload)]
    except DecodeFailure as failure:
        failure.at("<set item>")
        raise
    if len(items) > MAX_EQUAL_HASHES:  # smaller ones cannot exceed it: no call
        _check_hash_spread(items, "members")
    return items


def _check_hash_spread(items: list[Any], what: str) -> None:
    """Refuse hash-flooding: more than `MAX_EQUAL_HASHES` of ``items`` with one hash value.

    Hashing each item once more is linear; a set built from colliding items is quadratic.
    """
    count = len(items)
    hashes = list(map(hash, items))  # raises TypeError for an unhashable item, as set() would
    # n items with d distinct hashes: no hash is shared by more than n - d + 1 of them.
    if count - len(set(hashes)) < MAX_EQUAL_HASHES:
        return
    _, most = Counter(hashes).most_common(1)[0]
    if most > MAX_EQUAL_HASHES:
        raise DecodeFailure(
            f"{most:,} {what} share one hash value: more than the {MAX_EQUAL_HASHES} allowed "
            "(a hash-flooding payload; see asynctasq.serializer.limits)"
        )


def _decode_map(payload: Any) -> dict[Any, Any]:
    keys: list[Any] = []
    values: list[Any] = []
    for pair in _expect_list(payload):
        if type(pair) is not list or len(pair) != 2:
            raise ValueError(f"expected a [key, value] pair, got {short_repr(pair)}")
        try:
            key = decode_tree(pair[0])
        except DecodeFailure as failure:
            failure.at(f"<key #{len(keys)}>")
            raise
        try:
            values.append(decode_tree(pair[1]))
        except DecodeFailure as failure:
            failure.at(f"[{short_repr(key)}]")
            raise
        keys.append(key)
    if len(keys) > MAX_EQUAL_HASHES:
        _check_hash_spread(keys, "keys")
    return dict(zip(keys, values, strict=True))


def _decode_escaped(payload: Any) -> dict[str, Any]:
    if type(payload) is not dict:
        raise TypeError(f"payload must be an object, got {short_repr(payload)}")
    out: dict[str, Any] = {}
    # No tag check here: these keys are the user's, the tag key among them.
    for k, v in payload.items():
        try:
            out[k] = decode_tree(v)
        except DecodeFailure as failure:
            failure.at(f"[{short_repr(k)}]")
            raise
    return out


def _decode_enum(payload: Any) -> Any:
    payload = _expect_list(payload)
    if len(payload) != 2:
        raise ValueError(f"expected [class, value], got {short_repr(payload)}")
    cls = import_enum_class(payload[0])
    try:
        value = decode_tree(payload[1])
    except DecodeFailure as failure:
        failure.at(".value")
        raise
    if issubclass(cls, Flag):
        return _flag_member(cls, value)
    return cls(value)


def _flag_member(cls: type[Flag], value: Any) -> Enum:
    """``cls(value)``, without letting messages grow the class's cache of combinations.

    A Flag value that is not a defined member (``A | B``) is created on first use and cached
    in ``cls._value2member_map_`` for the life of the process; a message naming a new value
    each time (``re.RegexFlag(4096)``, ``(8192)``... which the KEEP boundary accepts) would
    grow it without bound. Dropping the entries again is no way out: a plain Flag's members
    compare by identity, so ``A | B`` must keep returning the cached object. So: a cached
    value decodes; a new combination of defined members decodes while the class holds fewer
    than `MAX_FLAG_COMBINATIONS` of them (all of them, for up to 12 single-bit members);
    anything else (undefined bits, negative values, a full cache) is refused.
    """
    known = cls._value2member_map_
    try:
        member = known.get(value)
    except TypeError:  # unhashable: cls(value) would refuse it too
        member = None
    if member is not None:
        return member
    # _flag_mask_: the bits of the defined members (set by EnumType since 3.11; not in typeshed).
    mask: int = cls._flag_mask_  # type: ignore[attr-defined]
    if type(value) is not int or value < 0 or value & ~mask:
        raise ValueError(f"{short_repr(value)} is not a combination of {cls.__qualname__} members")
    if len(known) >= len(cls._member_map_) + MAX_FLAG_COMBINATIONS:
        raise ValueError(
            f"{cls.__qualname__} already holds {MAX_FLAG_COMBINATIONS:,} combined values; "
            f"{value} is not one of them (the limit keeps messages from growing the class)"
        )
    return cls(value)


_BUILTIN_DECODERS: Final[dict[str, Callable[[Any], Any]]] = {
    _tags.TUPLE: _decode_tuple,
    _tags.SET: _decode_set,
    _tags.FROZENSET: _decode_frozenset,
    _tags.MAP: _decode_map,
    _tags.DICT: _decode_escaped,
    _tags.ENUM: _decode_enum,
    _tags.DATETIME: _scalars.decode_datetime,
    _tags.DATE: _scalars.decode_date,
    _tags.TIME: _scalars.decode_time,
    _tags.TIMEDELTA: _scalars.decode_timedelta,
    _tags.DECIMAL: _scalars.decode_decimal,
    _tags.UUID: _scalars.decode_uuid,
    _tags.BYTES: _scalars.decode_bytes,
    _tags.BYTEARRAY: _scalars.decode_bytearray,
    _tags.FLOAT: _scalars.decode_non_finite,
    _tags.INT: _scalars.decode_big_int,
}


def node_tag(node: dict[str, Any]) -> str:
    if len(node) != 2 or _V not in node:
        raise DecodeFailure(
            f"malformed tagged node {short_repr(node)}: a {_TAG!r} object must have exactly "
            f"the keys {_TAG!r} and {_V!r}"
        )
    tag = node[_TAG]
    if type(tag) is not str:
        raise DecodeFailure(f"malformed tagged node {short_repr(node)}: the tag is not a str")
    return tag


def _decode_node(node: dict[str, Any]) -> Any:
    tag = node_tag(node)
    spent = budget.get()
    if spent is not None:
        spent.tagged_values -= 1
        if spent.tagged_values < 0:
            raise DecodeFailure(
                f"more than {MAX_TAGGED_VALUES:,} tagged values in one message "
                "(see asynctasq.serializer.limits)",
                tag,
            )
    decoder = _BUILTIN_DECODERS.get(tag)
    if decoder is None:
        return _decode_extension(tag, node)
    try:
        return decoder(node[_V])
    except DecodeFailure as failure:
        if failure.tag is None:
            failure.tag = tag
        raise
    except RecursionError:
        raise  # not a malformed node: from_wire reports the nesting
    except Exception as exc:  # built-in decoders are pure: any error means a bad payload
        raise DecodeFailure(
            f"malformed {tag!r} node {short_repr(node[_V])}: {type(exc).__name__}: "
            f"{clip(str(exc))}",
            tag,
        ) from exc


def _decode_extension(tag: str, node: dict[str, Any]) -> Any:
    registry = _registry.REGISTRY
    codec = registry.codecs_by_tag.get(tag)
    if codec is not None:
        payload = decode_payload(node[_V], tag)
        try:
            return codec.decode(payload)
        except Exception as exc:
            raise DecodeFailure(
                f"the decoder registered for tag {tag!r} failed: {type(exc).__name__}: "
                f"{clip(str(exc))}",
                tag,
            ) from exc
    hook = registry.hooks_by_tag.get(tag)
    if hook is not None:
        results = async_results.get()
        if results is None:
            raise DecodeFailure(
                f"tag {tag!r} belongs to the async serializer hook {hook!r}; decode this tree "
                "with `await asynctasq.serializer.from_wire_async(tree)`",
                tag,
            )
        return results[id(node)]
    if plugins.ensure_discovered():
        return _decode_extension(tag, node)
    raise DecodeFailure(
        f"unknown tag {tag!r}: no registered type or serializer hook decodes it "
        f"(is the package that registers it installed and imported in the worker?)"
        f"{plugins.failure_notes()}",
        tag,
    )


def decode_payload(payload: Any, tag: str) -> Any:
    try:
        return decode_tree(payload)
    except DecodeFailure as failure:
        failure.at(f"<{tag} payload>")
        raise


def from_wire(tree: Any, path: str = "payload") -> Any:
    """Turn a tree made by `to_wire` back into Python values.

    A tree without tagged nodes is returned as it is, not copied.

    Args:
        tree: A JSON-native tree, typically from ``orjson.loads``.
        path: What ``tree`` is, for error messages.

    Returns:
        The decoded value.

    Raises:
        DeserializationError: A node is malformed, its tag is unknown, its Enum class cannot
            be imported (or the import guard refused it), it needs an async hook (use
            `from_wire_async`), or the tree is beyond one of the bounds in
            `asynctasq.serializer.limits` (too many tagged values, set members sharing a
            hash, a new Flag combination past the cap, nesting deeper than the stack).
    """
    try:
        if _is_plain(tree):
            return tree
        if budget.get() is not None:
            return decode_tree(tree)
        token = budget.set(Budget())
        try:
            return decode_tree(tree)
        finally:
            budget.reset(token)
    except DecodeFailure as failure:
        raise failure.to_error(path) from failure.__cause__
    except RecursionError:
        reason = "nested too deeply"
        raise DeserializationError(
            f"cannot deserialize {path}: {reason}", path=path, reason=reason, tag=None
        ) from None


def loads(data: bytes | bytearray | memoryview | str, path: str = "payload") -> Any:
    """``from_wire(orjson.loads(data))``.

    Args:
        data: JSON text.
        path: What ``data`` is, for error messages.

    Returns:
        The decoded value.

    Raises:
        DeserializationError: ``data`` is not valid JSON, or as `from_wire`.
    """
    try:
        tree = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DeserializationError(
            f"cannot deserialize {path}: invalid JSON: {exc}",
            path=path,
            reason=f"invalid JSON: {exc}",
            tag=None,
        ) from exc
    return from_wire(tree, path)
