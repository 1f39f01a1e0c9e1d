"""Turning an exception into the `Failure` a dead letter keeps, with bounded text.

Error texts come from task code and from whatever a message made it do: a task failing with a
5 MiB message must not cost a 5 MiB log line, nor a 5 MiB dead letter.
"""

from __future__ import annotations

import traceback

from asynctasq.drivers.base import Failure

MAX_MESSAGE = 64 * 1024
"""Characters of an exception's message a dead letter keeps."""
MAX_TRACEBACK = 256 * 1024
"""Characters of a formatted traceback a dead letter keeps (its end: the raising frame)."""
MAX_LOGGED = 2000
"""Characters of an exception's message a worker log line carries."""


def type_name(exception: BaseException) -> str:
    """``module.Class`` of `exception`, as dead letters and status records name it."""
    cls = type(exception)
    return f"{cls.__module__}.{cls.__qualname__}"


def text_of(exception: BaseException) -> str:
    """``str(exception)``, or a stand-in when its ``__str__`` raises."""
    try:
        return str(exception)
    except Exception as exc:  # a hostile __str__ must not break the dead-lettering
        return f"<unprintable {type(exception).__name__}: str() raised {type(exc).__name__}>"


def clip(text: str, limit: int, *, keep_end: bool = False) -> str:
    """`text` cut to at most about `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep_end:
        return f"[... {cut} characters cut]{text[-limit:]}"
    return f"{text[:limit]}[... {cut} characters cut]"


def printable(text: str) -> str:
    """`text` with control and invisible characters escaped (``\\x1b``, ``\\u202e``).

    Task ids, names and error messages come from messages: written raw to a log, they could
    clear a terminal, rewrite a line or forge one.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def brief(exception: BaseException) -> str:
    """The exception's message, short enough for one log line and printable."""
    return printable(clip(text_of(exception), MAX_LOGGED))


def failure_from(exception: BaseException) -> Failure:
    """The exception's qualified type, message and formatted traceback, bounded."""
    name = type_name(exception)
    try:
        trace = "".join(traceback.format_exception(exception))
    except Exception:  # a hostile __str__ again
        trace = ""
    return Failure(
        exception_type=name,
        message=clip(text_of(exception), MAX_MESSAGE),
        traceback=clip(trace, MAX_TRACEBACK, keep_end=True),
    )
