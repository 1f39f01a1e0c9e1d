"""Masking secrets before text is shown or logged: the one implementation used by the CLI
and every driver.

It masks passwords inside URLs (``redis://:pw@host``, ``postgresql://user:pw@host/db``),
secrets given as ``key=value`` (``?password=pw``, ``host=h password=pw``, ``token=...``)
and the values of settings named like secrets (``password``, ``aws_secret_access_key``).
User names, hosts, ports, paths and other options stay, so a masked URL still says where
it points::

    >>> redact_url("postgresql://app:hunter2@db:5432/app?sslmode=require")
    'postgresql://app:***@db:5432/app?sslmode=require'

Where a password ends
---------------------
A well-formed URL percent-encodes its password, which then lies between the first ``:``
after ``scheme://`` and the ``@`` before the host. Operators also paste passwords
unencoded (``postgresql://app:pa/ss@db/app``, ``redis://:p@ss?w#rd@h``); a URL parser
then reads part of the password as the host or the path, and masking only what it calls
the password would print the rest. So the credentials are taken to run from ``scheme://``
to the *last* ``@`` of the URL that is not inside a query value (the ``@`` of
``?email=a@b`` is data, the ``@`` of ``?x@h`` is not). Consequences, all on the side of
hiding too much:

* a URL with an ``@`` in its path or fragment and a ``host:port`` before it
  (``https://h:443/users/@me``) is masked from the port to that ``@``;
* a password may hold ``://`` (``u:a://b@h``), so when a URL's authority has a ``:``
  that is not a port's and no ``@`` follows in the same URL, the credentials run on to
  the ``@`` of the next URL in the same run of text.

What text cannot tell apart, and is therefore not masked whole: a password holding ``?``
or ``#`` followed by ``=`` (``pa?x=y``: it reads as a query), a password holding ``://``
after nothing but digits (``12://x``: ``12`` reads as a port), and one holding ``@`` and
later ``://`` (``a@b://c``: ``b`` reads as a host). Percent-encode such passwords, as the
drivers' documentation asks.

Cost
----
Redaction runs on every log line of a worker, on text that may come from a task's error
message, so its cost must not depend on what the text contains: it is linear in the
length of the text. The regular expressions never re-scan text: search attempts start
only where a run begins (a look-behind refuses the middle of a run) and consume
possessively or atomically, so a failed attempt does not retry shorter matches; the one
that backtracks (the last ``@`` of a query), run once per URL, tries each position once.
The rest is a constant number of linear `str` operations per URL or ``://``.
Callers that show text to people should still bound it (the CLI's log handler cuts
every message to 64 KiB); this module keeps even a multi-megabyte string cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "MASK",
    "is_secret_name",
    "redact_setting",
    "redact_settings",
    "redact_text",
    "redact_url",
    "url_password",
]

MASK = "***"
"""What a secret is replaced with."""

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
_NAME_WORDS = re.compile(r"[_\-.]")

# A whitespace-free run that holds "://", then ":", then "@": the only runs that can carry
# URL credentials. `(?<!\S)` starts attempts at run starts only; the atomic group and the
# possessive classes keep a failing attempt from rescanning the run.
_URL_RUN = re.compile(r"(?<!\S)(?>\S*?://)[^\s:]*+:[^\s@]*+@\S*+")
_SCHEME = re.compile(r"\s*+[A-Za-z][A-Za-z0-9+.\-]*+://")
_QUERY_START = re.compile(r"[?#]")
_SPACE = re.compile(r"\s")
_AUTHORITY_END = re.compile(r"[/?#]")
# From the start of the query: the last "@" of a query piece that comes before the piece's
# first "=". The greedy prefix backs off one character at a time and only tries the rest at
# piece boundaries; each piece is scanned once, so this is linear too.
_LAST_QUERY_AT = re.compile(r".*[?#&;][^?#&;=]*@", re.DOTALL)

_SECRET_KEY = r"(?:password|passwd|pwd|secret|token|passphrase|api[_\-]?key|access[_\-]?key)"
# Every key above holds one of these (casefolded): a fast test for text without any.
_SECRET_KEY_PARTS = ("pass", "pwd", "secret", "token", "key")
_QUOTED = r"'(?:[^'\\]|\\.)*+'|\"(?:[^\"\\]|\\.)*+\""


def _keyword_pattern(unquoted: str) -> re.Pattern[str]:
    # The look-behind admits only the start of a key; the look-ahead (atomic, like every
    # look-around) checks the key names a secret without consuming it; the possessive key,
    # spaces and value cannot be re-tried shorter.
    return re.compile(
        rf"(?<![\w\-])(?=[\w\-]*?{_SECRET_KEY})(?P<key>[\w\-]*+\s*+=\s*+)"
        rf"(?P<value>{_QUOTED}|{unquoted})",
        re.IGNORECASE,
    )


# In a URL or in prose, a value ends at "&", ";" or a space (``?token=t&a=1``).
_TEXT_KEYWORD = _keyword_pattern(r"[^&;\s]++")
# In a keyword DSN (``host=h password=p&q``) only a space ends an unquoted value.
_DSN_KEYWORD = _keyword_pattern(r"\S++")


def is_secret_name(name: str) -> bool:
    """Whether a setting called `name` holds a secret (``password``, ``aws_secret_access_key``).

    Args:
        name: A setting name, any case, words separated by ``_``, ``-`` or ``.``.

    Returns:
        True when a word of the name names a secret (``password``, ``token``, ``key``,
        ...) and the last word does not say the setting holds something else about it
        (``key_prefix``, ``ssl_key_file``, ``token_ttl``).
    """
    words = [word for word in _NAME_WORDS.split(name.lower()) if word]
    if not words or words[-1] in _NOT_SECRET_LAST:
        return False
    return any(
        word in _SECRET_WORDS or word.endswith(("password", "secret", "token")) for word in words
    )


def redact_text(text: str) -> str:
    """`text` with passwords inside URLs and ``key=value`` secrets replaced by `MASK`.

    For free text: log lines, error messages, reprs. Each whitespace-free run holding
    ``://`` is read as URLs (see the module documentation for where a password ends);
    ``password=...``, ``token=...``, ``secret=...``, ``api_key=...`` and the like are
    masked up to ``&``, ``;`` or a space, or the closing quote of a quoted value. Text
    like ``a:b@c`` without ``://`` is not a URL and stays.

    Args:
        text: Any text; its length does not matter (the cost is linear).

    Returns:
        The masked text (the same object when there was nothing to mask).
    """
    if "://" in text and "@" in text:
        text = _URL_RUN.sub(_mask_run, text)
    if _may_hold_secret_key(text):
        text = _TEXT_KEYWORD.sub(_mask_value, text)
    return text


def redact_url(url: str) -> str:
    """`url`, one URL or DSN, with its passwords replaced by `MASK`.

    Unlike `redact_text`, the whole string is one connection string, so a password with a
    space in it is masked whole. Handles the password in the authority
    (``postgresql://user:pw@host/db``), in the query string (``?password=pw``), in
    keyword form (``host=h password=pw``, quoted values too) and a URL given without its
    scheme (``user:pw@host:6379``).

    Args:
        url: A URL (it starts with ``scheme://``), a keyword DSN or a URL without its
            scheme.

    Returns:
        The masked string; what is not a secret stays as written.
    """
    if _SCHEME.match(url):
        url = _mask_run(url)
        return _TEXT_KEYWORD.sub(_mask_value, url) if _may_hold_secret_key(url) else url
    if _may_hold_secret_key(url):
        url = _DSN_KEYWORD.sub(_mask_value, url)
    if "@" in url and _SPACE.search(url) is None:
        # A URL without its scheme; a keyword DSN has spaces, and its "@" and ":" belong to
        # values (``user=a@corp password=b``), masked above when they are secret.
        url = _mask_before(url, _credential_at(url))
    return url


def url_password(url: str) -> str | None:
    """The text `redact_url` masks as the password of `url`'s first URL, as written.

    A driver that parses its URL with `urllib.parse` can compare this with the password
    it found: when they differ, the password holds an unencoded ``/``, ``?``, ``#`` or
    ``@`` and the parse put part of it in the host or the path.

    Args:
        url: A URL (``scheme://...``), or one without its scheme (``user:pw@host``).

    Returns:
        The password, still percent-encoded; None without one (no ``:`` in the
        credentials, or an empty password).
    """
    pieces = url.split("://") if "://" in url else ["", url]
    segment, at = next(_urls(pieces))
    colon = segment.find(":", 0, at) if at > 0 else -1
    if colon < 0 or colon + 1 == at:
        return None
    return segment[colon + 1 : at]


def redact_setting(name: str, value: Any) -> Any:
    """The value of setting `name` safe to show.

    Args:
        name: The setting's name; a secret name (see `is_secret_name`) masks the value.
        value: Its value; a string is passed through `redact_url` otherwise.

    Returns:
        `MASK` for a set secret, the masked string, or `value` unchanged (None, ``""``,
        numbers and other non-strings).
    """
    if value is None or value == "":
        return value
    if is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return redact_url(value)
    return value


def redact_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with every value passed through `redact_setting`."""
    return {name: redact_setting(name, value) for name, value in settings.items()}


def _may_hold_secret_key(text: str) -> bool:
    # A case-insensitive search costs ~100 ns a character; these C-speed tests skip it for
    # the text that cannot match (casefold maps the characters IGNORECASE equates with the
    # keys' letters, such as the long s and the Kelvin sign, to those letters).
    if "=" not in text:
        return False
    folded = text.casefold()
    return any(word in folded for word in _SECRET_KEY_PARTS)


def _mask_value(match: re.Match[str]) -> str:
    return f"{match['key']}{MASK}"


def _mask_run(run: re.Match[str] | str) -> str:
    """`run` (a match or a string holding ``://``) with the passwords of its URLs masked."""
    text = run if isinstance(run, str) else run[0]
    scheme, _, rest = text.partition("://")
    if "://" not in rest:  # one URL, the common case: spare the general path's overhead
        return f"{scheme}://{_mask_before(rest, _credential_at(rest))}"
    pieces = text.split("://")
    return "://".join([pieces[0], *(_mask_before(seg, at) for seg, at in _urls(pieces))])


def _urls(pieces: list[str]) -> Iterator[tuple[str, int]]:
    """Each URL of text split at "://" (from `pieces[1]` on), and where its credentials end.

    A URL is one piece, or several when its password holds "://" itself. Yields the URL
    without its scheme and the index of the "@" ending its credentials (-1 without one).
    """
    count = len(pieces)
    # `later` only moves forward: the search for a piece holding "@" is linear overall.
    later = 0
    i = 1
    while i < count:
        segment, last = pieces[i], i
        if ":" not in segment:
            # Neither a password nor the start of one (the cheap common case).
            yield segment, -1
            i += 1
            continue
        at = _credential_at(segment)
        if at < 0 and not _is_host_and_port(segment):
            # No "@" yet after "user:pa": the password may itself hold "://", so the
            # credentials end in the first later piece holding an "@".
            later = max(later, i + 1)
            while later < count and "@" not in pieces[later]:
                later += 1
            if later < count:
                last = later
                segment = "://".join(pieces[i : last + 1])
                at = _credential_at(segment)
        yield segment, at
        i = last + 1


def _mask_before(segment: str, at: int) -> str:
    """`segment` with the text between its first ":" and `at` (its credentials' "@") masked."""
    if at < 0:
        return segment
    colon = segment.find(":", 0, at)
    if colon < 0 or colon + 1 == at:
        return segment
    return f"{segment[: colon + 1]}{MASK}{segment[at:]}"


def _credential_at(segment: str) -> int:
    """Where the "@" ending the credentials of `segment` (a URL after "://") is, or -1.

    The last "@" that is not part of a query value: any "@" before the first "?" or "#",
    or one in a query piece before that piece's "=".
    """
    if "@" not in segment:
        return -1
    query = _QUERY_START.search(segment)
    if query is None:
        return segment.rfind("@")
    found = _LAST_QUERY_AT.match(segment, query.start())
    if found is not None:
        return found.end() - 1
    return segment.rfind("@", 0, query.start())


def _is_host_and_port(segment: str) -> bool:
    """Whether `segment`'s authority reads as ``host`` or ``host:port`` (no password)."""
    end = _AUTHORITY_END.search(segment)
    authority = segment[: end.start()] if end else segment
    if ":" not in authority or authority.endswith("]"):
        return True
    port = authority.rpartition(":")[2]
    return port.isascii() and port.isdigit()
