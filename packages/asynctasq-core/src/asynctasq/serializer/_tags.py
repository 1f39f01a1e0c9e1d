"""Wire-format constants: the tag key and the names of the built-in tags.

A *tagged node* is a JSON object with exactly two keys, ``{TAG_KEY: <tag>, VALUE_KEY: <payload>}``;
every other JSON object is a plain ``dict`` with string keys. A user dict that happens to contain
``TAG_KEY`` is wrapped in a ``dict`` node so it can never be mistaken for a tagged node.
"""

from __future__ import annotations

from typing import Final

TAG_KEY: Final = "__aq__"
"""The key that marks a JSON object as a tagged node."""

VALUE_KEY: Final = "v"
"""The key holding a tagged node's payload."""

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
"""Integers outside the signed 64-bit range are tagged: orjson refuses them and many JSON
consumers (JavaScript, jsonb tooling) silently round them through float64."""

TUPLE: Final = "tuple"
SET: Final = "set"
FROZENSET: Final = "frozenset"
MAP: Final = "map"
"""A dict with at least one non-``str`` key: payload ``[[key, value], ...]`` in insertion order."""
DICT: Final = "dict"
"""An escaped dict: a ``str``-keyed dict that contains ``TAG_KEY`` itself."""
BYTES: Final = "bytes"
BYTEARRAY: Final = "bytearray"
DATETIME: Final = "datetime"
DATE: Final = "date"
TIME: Final = "time"
TIMEDELTA: Final = "timedelta"
DECIMAL: Final = "decimal"
UUID: Final = "uuid"
FLOAT: Final = "float"
"""A non-finite float (``"nan"``, ``"inf"``, ``"-inf"``): JSON has no literal for them."""
INT: Final = "int"
"""An integer outside the signed 64-bit range, as a decimal (or ``0x`` hex) string."""
ENUM: Final = "enum"
"""An Enum member: payload ``["module:qualname", value]``."""

BUILTIN_TAGS: Final = frozenset(
    {
        TUPLE,
        SET,
        FROZENSET,
        MAP,
        DICT,
        BYTES,
        BYTEARRAY,
        DATETIME,
        DATE,
        TIME,
        TIMEDELTA,
        DECIMAL,
        UUID,
        FLOAT,
        INT,
        ENUM,
    }
)
"""Tags reserved by the serializer; plugins may not use them."""
