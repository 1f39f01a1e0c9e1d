"""The rules every `ClaimStore` applies to its arguments, in one place so drivers agree.

A claim's key and holder are short strings chosen by core (``schedule:<name>:<tick>``,
``unique:<task>:<key>``, a task id), but part of a key can come from a user (a schedule's
name, a unique key), so each driver checks them before any I/O with `check_claim`:

* a key holds 1 to `MAX_CLAIM_KEY_LENGTH` characters, a holder 1 to
  `MAX_CLAIM_HOLDER_LENGTH`: the SQL drivers size their columns from these (4 bytes a
  character in UTF-8 at most), and a claim never costs more than a few KiB;
* neither holds NUL (PostgreSQL text cannot store it, C-string APIs would cut it) nor a lone
  surrogate (not encodable as UTF-8); anything else (quotes, ``%``, ``_``, backslashes,
  any Unicode) is data and compared exactly, byte for byte;
* a ttl is a finite number of seconds above 0 and at most `MAX_CLAIM_TTL`.
"""

from __future__ import annotations

import math

MAX_CLAIM_KEY_LENGTH = 512
"""Most characters in a claim's key."""
MAX_CLAIM_HOLDER_LENGTH = 256
"""Most characters in a claim's holder (and in `replace`)."""
MAX_CLAIM_TTL = 100 * 366 * 86400.0
"""Longest ttl of a claim, in seconds (about a century: far beyond any use, short of where
server clocks and date types overflow)."""


def _check_text(what: str, value: object, limit: int, limit_name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a claim's {what} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"a claim's {what} cannot be empty")
    if len(value) > limit:
        raise ValueError(
            f"a claim's {what} is {len(value)} characters long; the limit is {limit} "
            f"({limit_name}): shorten it, e.g. hash its variable part"
        )
    if "\x00" in value:
        raise ValueError(f"a claim's {what} cannot contain NUL (\\x00): {value[:80]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"a claim's {what} must be encodable as UTF-8 (no lone surrogates): {value[:80]!r}"
        ) from None
    return value


def stored_holder(raw: bytes) -> str | None:
    """The holder a stored value (its bytes) names, or None when it is no holder a driver
    could have written: not UTF-8, empty, longer than `MAX_CLAIM_HOLDER_LENGTH`, or holding
    NUL. Such a value was written behind the driver's back, and a claim under it is no
    claim: `replace` could never name it, so it would never be replaced or released."""
    try:
        holder = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not holder or len(holder) > MAX_CLAIM_HOLDER_LENGTH or "\x00" in holder:
        return None
    return holder


def held_count(holder: str | None, max_digits: int = 18) -> int:
    """The count a holder stands for where core keeps a number in a claim; anything but
    plain ASCII digits, at most `max_digits` of them (written behind core's back: ``"²"``
    passes `str.isdigit` and fails `int`), counts as 0."""
    if holder is None or not holder.isascii() or not holder.isdigit():
        return 0
    return int(holder) if len(holder) <= max_digits else 0


def check_claim_key(key: object) -> str:
    """Return `key` if it is a valid claim key.

    Raises:
        TypeError: It is not a str.
        ValueError: It is empty, longer than `MAX_CLAIM_KEY_LENGTH`, holds NUL or a lone
            surrogate.
    """
    return _check_text("key", key, MAX_CLAIM_KEY_LENGTH, "MAX_CLAIM_KEY_LENGTH")


def check_claim_holder(holder: object, what: str = "holder") -> str:
    """Return `holder` if it is a valid claim holder (`what` names it in errors).

    Raises:
        TypeError: It is not a str.
        ValueError: It is empty, longer than `MAX_CLAIM_HOLDER_LENGTH`, holds NUL or a lone
            surrogate.
    """
    return _check_text(what, holder, MAX_CLAIM_HOLDER_LENGTH, "MAX_CLAIM_HOLDER_LENGTH")


def check_claim_ttl(ttl: object) -> float:
    """Return `ttl` as a float if it is a valid claim ttl (seconds).

    Raises:
        TypeError: It is not a number.
        ValueError: It is not finite, not above 0, or above `MAX_CLAIM_TTL`.
    """
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"a claim's ttl must be a number of seconds, got {type(ttl).__name__}")
    seconds = float(ttl)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a claim's ttl must be a finite number of seconds above 0, got {ttl!r}")
    if seconds > MAX_CLAIM_TTL:
        raise ValueError(
            f"a claim's ttl is {seconds:g} seconds; the limit is {MAX_CLAIM_TTL:g} (MAX_CLAIM_TTL)"
        )
    return seconds


def check_claim(key: object, holder: object, ttl: object, replace: object = None) -> float:
    """Check the arguments of `ClaimStore.claim` before any I/O; return the ttl as a float.

    Raises:
        TypeError, ValueError: See `check_claim_key`, `check_claim_holder` and
            `check_claim_ttl`; `replace`, when given, follows the holder's rules.
    """
    check_claim_key(key)
    check_claim_holder(holder)
    if replace is not None:
        check_claim_holder(replace, "replace holder")
    return check_claim_ttl(ttl)


__all__ = [
    "MAX_CLAIM_HOLDER_LENGTH",
    "MAX_CLAIM_KEY_LENGTH",
    "MAX_CLAIM_TTL",
    "check_claim",
    "check_claim_holder",
    "check_claim_key",
    "check_claim_ttl",
    "stored_holder",
]
