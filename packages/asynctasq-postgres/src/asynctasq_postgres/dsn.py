"""DSN handling that never leaks a password: asyncpg parses, core's redaction masks."""

from __future__ import annotations

from asynctasq.redaction import redact_url


def redact_dsn(dsn: str | None) -> str | None:
    """Return `dsn` with any password replaced by ``***`` (for reprs, logs and errors).

    Handles the password in the authority part (``postgresql://user:secret@host/db``,
    also when it holds an unencoded ``/``, ``?``, ``#`` or ``@``), in the query string
    (``?password=secret``) and in keyword form (``password=secret``,
    ``password='with spaces'``). The DSN itself is parsed only by asyncpg; this function
    never feeds a connection. See `asynctasq.redaction.redact_url`.

    Args:
        dsn: A connection string, or None.

    Returns:
        The redacted string (None stays None).
    """
    return None if dsn is None else redact_url(dsn)


__all__ = ["redact_dsn"]
