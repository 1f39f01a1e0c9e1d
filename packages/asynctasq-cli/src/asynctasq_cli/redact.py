"""Masking secrets before anything is shown: settings named like secrets, and passwords
inside URLs and DSNs (``redis://:pw@host``, ``postgresql://u:pw@h/db``, ``password=pw``).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# A setting is secret when one of its name's words is one of these...
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "key",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "passphrase",
    }
)
# ...unless its last word says it names something else (a key prefix, a key file's path).
_NOT_SECRET_LAST = frozenset(
    {"prefix", "file", "path", "dir", "table", "name", "timeout", "size", "count", "ttl"}
)

# scheme://user:password@host -> scheme://user:***@host (the user part may be empty).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#@\s]*:)(?P<pw>[^/?#\s]*)@")
# password=..., token=..., secret=... in a query string or a keyword DSN.
_KEYWORD_SECRET = re.compile(
    r"(?P<key>\b[\w\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key)"
    r"[\w\-]*\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^&;\s]+)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Whether a setting called `name` holds a secret (``password``, ``aws_secret_access_key``).

    Args:
        name: A setting name, any case, words separated by ``_``, ``-`` or ``.``.
    """
    words = [w for w in re.split(r"[_\-.]", name.lower()) if w]
    if not words or words[-1] in _NOT_SECRET_LAST:
        return False
    return any(w in _SECRET_WORDS or w.endswith(("password", "secret", "token")) for w in words)


def redact_text(text: str) -> str:
    """`text` with passwords inside URLs and ``key=value`` secrets replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@" if m["pw"] else m[0], text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_setting(name: str, value: Any) -> Any:
    """The value of setting `name` safe to show: masked when secret, URLs cleaned otherwise."""
    if value is None or value == "":
        return value
    if is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with every value passed through `redact_setting`."""
    return {name: redact_setting(name, value) for name, value in settings.items()}


__all__ = ["MASK", "is_secret_name", "redact_setting", "redact_settings", "redact_text"]
