"""DSN handling that never leaks a password: asyncpg parses, this module only redacts."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

REDACTED = "***"

_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str | None) -> str | None:
    """Return `dsn` with any password replaced by ``***`` (for reprs, logs and errors).

    Handles the password in the authority part (``postgresql://user:secret@host/db``), in
    the query string (``?password=secret``) and in keyword form (``password=secret``).
    The DSN itself is parsed only by asyncpg; this function never feeds a connection.

    Args:
        dsn: A connection string, or None.

    Returns:
        The redacted string (None stays None).
    """
    if dsn is None:
        return None
    if "://" not in dsn:
        return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + REDACTED, dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    userinfo, at, hostinfo = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() == "password" for key, _ in pairs):
            query = urlencode(
                [(k, REDACTED if k.lower() == "password" else v) for k, v in pairs],
                quote_via=quote,
                safe="*",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


__all__ = ["redact_dsn"]
