"""Message headers: short strings that dispatch-side middleware attach to a message and
worker-side middleware read back (`Job.headers`), like Celery's message headers.

Their first user is tracing (W3C ``traceparent``/``tracestate``). They travel in the
envelope (`asynctasq.core.envelope`) and are bounded the same on both sides: at dispatch a
bad header is the caller's error (`ValueError` naming it); in a message a worker reads it is
hostile input, and the message is dead-lettered without running.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

MAX_HEADERS = 32
"""Most headers one message carries (all middleware together)."""
MAX_NAME_LENGTH = 64
"""Longest header name."""
MAX_VALUE_LENGTH = 1024
"""Longest header value, in characters."""
NAME_CHARACTERS = "ASCII letters, digits, '-', '_' and '.'"

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

NO_HEADERS: Mapping[str, str] = MappingProxyType({})
"""What a message without headers reads as (shared, read-only)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def header_problem(name: Any, value: Any) -> str | None:
    """What is wrong with one header, or None. Names and values may be hostile: the text
    returned shows them bounded and escaped (``repr``)."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        return (
            f"header name {_short(name)} is not 1 to {MAX_NAME_LENGTH} characters of "
            f"{NAME_CHARACTERS}"
        )
    if not isinstance(value, str):
        return f"header {name!r} has a {type(value).__name__} value; header values are strings"
    if len(value) > MAX_VALUE_LENGTH:
        return (
            f"header {name!r} has a value of {len(value)} characters; at most "
            f"{MAX_VALUE_LENGTH} are allowed"
        )
    if not value.isprintable():
        return f"header {name!r} has control or invisible characters in its value"
    return None


def headers_problem(headers: Any) -> str | None:
    """What is wrong with a message's headers (``{name: value}``), or None."""
    if not isinstance(headers, dict):
        return "the headers are not an object of names to strings"
    if len(headers) > MAX_HEADERS:
        return f"{len(headers)} headers, more than the {MAX_HEADERS} allowed"
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            return problem
    return None


def add_headers(into: dict[str, str], headers: Any, source: str) -> None:
    """Merge `headers` (a mapping a middleware returned) into `into`, checking each one.

    A later middleware's header replaces an earlier one's of the same name.

    Args:
        into: The headers gathered so far for one message.
        headers: What `source` returned.
        source: Who returned them, for the error (``Tracing.message_headers``).

    Raises:
        ValueError: a header is malformed, or there are more than `MAX_HEADERS`; the
            message names the header and `source`.
    """
    if not isinstance(headers, Mapping):
        raise ValueError(
            f"{source} returned {_short(headers)}; it must return a mapping of header names "
            "to strings, or None"
        )
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise ValueError(f"{source}: {problem}; nothing was queued")
        into[name] = value
    if len(into) > MAX_HEADERS:
        raise ValueError(
            f"{source}: the message would carry {len(into)} headers, more than the "
            f"{MAX_HEADERS} allowed; nothing was queued"
        )
