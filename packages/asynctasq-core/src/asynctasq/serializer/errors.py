"""Serializer exceptions.

Public: `SerializerError` and its subclasses `SerializationError` (a `TypeError`, like the
one `json`/`orjson` raise for unsupported objects) and `DeserializationError` (a
`ValueError`: the payload is malformed or names something this process cannot decode).

Internal: `EncodeFailure` / `DecodeFailure` travel up the recursion and collect the path on
the way (each container level adds its segment in an ``except`` clause, which costs nothing
until something fails), so the hot path never builds path strings; the public entry points
turn them into the public exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

_REPR_LIMIT: Final = 40


class SerializerError(Exception):
    """Base class of every error the serializer raises on purpose."""


class SerializationError(SerializerError, TypeError):
    """A value cannot be turned into the wire format.

    Attributes:
        path: Where the value sits, from the root name given to `to_wire`, e.g.
            ``"argument 'user' -> ['items'][2]"``.
        reason: What is wrong with it, e.g. ``"object of type 'Foo' (app.Foo); ..."``.
        value_type: The type of the offending value.
    """

    def __init__(self, message: str, *, path: str, reason: str, value_type: type) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.value_type = value_type


class DeserializationError(SerializerError, ValueError):
    """A wire tree cannot be turned back into Python values.

    Attributes:
        path: Where the node sits in the tree, e.g. ``"payload -> ['args'][0]"``.
        reason: What is wrong.
        tag: The tag of the node that failed, when the failure concerns a tagged node.
    """

    def __init__(self, message: str, *, path: str, reason: str, tag: str | None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.tag = tag


_TEXT_LIMIT: Final = 300
_INT_REPR_BITS: Final = 14_000
"""Ints up to this size have at most 4,215 digits: their repr is cheap and always allowed."""


def short_repr(value: object) -> str:
    """``repr(value)`` cut to a length that keeps error messages readable.

    Only the head of the repr is built: the values come from the queue, and the repr of a
    10 MB list (or of a million-digit int, quadratic) must not cost what the whole list does.
    """
    text = _head_repr(value, _REPR_LIMIT + 1)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters: exception messages may quote a whole payload."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _head_repr(value: object, room: int) -> str:
    """``repr(value)``, or a string longer than ``room`` that starts like it."""
    t = type(value)
    if t is str or t is bytes or t is bytearray:
        part: Any = value
        return repr(part if len(part) <= room else part[:room])
    if t is int:
        bits = value.bit_length()  # type: ignore[attr-defined]
        return repr(value) if bits <= _INT_REPR_BITS else f"<int of {bits:,} bits>"
    if t is list or t is tuple or t is set or t is frozenset:
        items: Any = value
        if not items:
            return repr(items)
        head, tail = _BRACKETS[t]
        if t is tuple and len(items) == 1:
            tail = ",)"
        return _join_head(head, items, tail, room, pairs=False)
    if t is dict:
        mapping: Any = value
        return _join_head("{", mapping.items(), "}", room, pairs=True)
    return repr(value)


_BRACKETS: Final[dict[type, tuple[str, str]]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}


def _join_head(head: str, items: Iterable[Any], tail: str, room: int, *, pairs: bool) -> str:
    out = [head]
    size = len(head)
    for index, item in enumerate(items):
        if size > room:
            return "".join(out)  # the caller cuts what is past the room anyway
        if index:
            out.append(", ")
            size += 2
        if pairs:
            key, val = item
            text = _head_repr(key, room - size)
            text = f"{text}: {_head_repr(val, room - size - len(text) - 2)}"
        else:
            text = _head_repr(item, room - size)
        out.append(text)
        size += len(text)
    out.append(tail)
    return "".join(out)


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class (just ``QualName`` for builtins)."""
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class _Failure(Exception):
    """Internal: a failure on its way up the recursion, collecting path segments."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []

    def at(self, segment: str) -> None:
        """Record that the failure happened under ``segment`` (innermost first)."""
        self.segments.append(segment)

    def path(self, root: str) -> str:
        """The full path, from ``root`` down to the failing value."""
        if not self.segments:
            return root
        return f"{root} -> {''.join(reversed(self.segments))}"


class EncodeFailure(_Failure):
    """Internal: raised inside the encoder, converted to `SerializationError` at the top."""

    def __init__(self, reason: str, value: object) -> None:
        super().__init__(reason)
        self.value_type: type = type(value)

    def to_error(self, root: str) -> SerializationError:
        """The public exception for this failure, with ``root`` naming the top value."""
        path = self.path(root)
        return SerializationError(
            f"cannot serialize {path}: {self.reason}",
            path=path,
            reason=self.reason,
            value_type=self.value_type,
        )


class DecodeFailure(_Failure):
    """Internal: raised inside the decoder, converted to `DeserializationError` at the top."""

    def __init__(self, reason: str, tag: str | None = None) -> None:
        super().__init__(reason)
        self.tag = tag

    def to_error(self, root: str) -> DeserializationError:
        """The public exception for this failure, with ``root`` naming the whole tree."""
        path = self.path(root)
        return DeserializationError(
            f"cannot deserialize {path}: {self.reason}",
            path=path,
            reason=self.reason,
            tag=self.tag,
        )
