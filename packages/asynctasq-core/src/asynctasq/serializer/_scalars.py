"""Payload codecs for the standard-library scalar types JSON cannot hold.

Encoders return JSON-native payloads (or raise `EncodeFailure` for a value that would not
round-trip exactly); decoders take the payload and raise `ValueError` / `TypeError` when it
is malformed (the decoder adds the tag and path).
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from ._tags import INT_MAX, INT_MIN
from .errors import EncodeFailure, qualified_name
from .limits import MAX_INT_BITS, MAX_INT_DIGITS, MAX_ZONE_KEY_LENGTH

_UTC: Final = dt.UTC
_MICROSECOND: Final = dt.timedelta(microseconds=1)
_MINUTE: Final = dt.timedelta(minutes=1)
_FIXED: Final = "fixed"
_ZONE: Final = "zone"


def _expect(payload: Any, kind: type, what: str) -> Any:
    # Exact type check: bool is an int subclass and must not pass for an int field.
    if type(payload) is not kind:
        raise TypeError(f"{what} must be {kind.__name__}, got {payload!r}")
    return payload


def _is_default_timezone(tz: dt.timezone) -> bool:
    """True when ``tz`` behaves like ``timezone(offset)`` without a custom name.

    ``isoformat()`` keeps only the offset, so a named timezone needs the long form.
    """
    if tz is _UTC:
        return True
    offset = tz.utcoffset(None)
    return tz.tzname(None) == dt.timezone(offset).tzname(None)


def _encode_tz(tz: dt.tzinfo | None, value: object) -> list[Any] | None:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        offset = tz.utcoffset(None)
        name = None if _is_default_timezone(tz) else tz.tzname(None)
        return [_FIXED, offset // _MICROSECOND, name]
    # Exact type: a ZoneInfo subclass would come back as a plain ZoneInfo.
    if type(tz) is ZoneInfo and tz.key is not None:
        return [_ZONE, tz.key]
    raise EncodeFailure(
        f"{type(value).__name__} with tzinfo of type {qualified_name(type(tz))!r} "
        f"({tz!r}) would not round-trip; use datetime.timezone or a keyed zoneinfo.ZoneInfo",
        value,
    )


def _decode_tz(spec: Any) -> dt.tzinfo | None:
    if spec is None:
        return None
    _expect(spec, list, "timezone")
    if spec and spec[0] == _FIXED and len(spec) == 3:
        offset = dt.timedelta(microseconds=_expect(spec[1], int, "timezone offset"))
        name = spec[2]
        if name is None:
            return dt.timezone(offset)
        return dt.timezone(offset, _expect(name, str, "timezone name"))
    if len(spec) == 2 and spec[0] == _ZONE:
        key = _expect(spec[1], str, "zone key")
        if len(key) > MAX_ZONE_KEY_LENGTH:
            # Not worth a file-system lookup (nor a copy of it in the error message).
            raise ValueError(f"zone key of {len(key)} characters")
        return ZoneInfo(key)
    raise ValueError(f"malformed timezone {spec!r}")


def _short_form(fold: int, tz: dt.tzinfo | None) -> bool:
    """Whether ``isoformat()`` alone round-trips: no fold, and no tz or an unnamed offset.

    Only whole-minute offsets: CPython 3.11's ``fromisoformat`` reads an offset of
    ``+00:00:00.000001`` as UTC, and ``+HH:MM`` is what every other JSON reader expects.
    """
    if fold != 0:
        return False
    if tz is None or tz is _UTC:
        return True
    return type(tz) is dt.timezone and not tz.utcoffset(None) % _MINUTE and _is_default_timezone(tz)


def encode_datetime(value: dt.datetime) -> str | list[Any]:
    """``isoformat()``, or ``[naive isoformat, fold, timezone]`` when that would lose data."""
    tz = value.tzinfo
    if _short_form(value.fold, tz):
        return value.isoformat()
    return [value.replace(tzinfo=None, fold=0).isoformat(), value.fold, _encode_tz(tz, value)]


def decode_datetime(payload: Any) -> dt.datetime:
    """Inverse of `encode_datetime`."""
    if type(payload) is str:
        return dt.datetime.fromisoformat(payload)
    naive, fold, tz = _long_form(payload)
    return dt.datetime.fromisoformat(naive).replace(tzinfo=tz, fold=fold)


def encode_time(value: dt.time) -> str | list[Any]:
    """Same forms as `encode_datetime`."""
    tz = value.tzinfo
    if _short_form(value.fold, tz):
        return value.isoformat()
    return [value.replace(tzinfo=None, fold=0).isoformat(), value.fold, _encode_tz(tz, value)]


def decode_time(payload: Any) -> dt.time:
    """Inverse of `encode_time`."""
    if type(payload) is str:
        return dt.time.fromisoformat(payload)
    naive, fold, tz = _long_form(payload)
    return dt.time.fromisoformat(naive).replace(tzinfo=tz, fold=fold)


def _long_form(payload: Any) -> tuple[str, int, dt.tzinfo | None]:
    _expect(payload, list, "payload")
    if len(payload) != 3:
        raise ValueError(f"expected [isoformat, fold, timezone], got {payload!r}")
    naive = _expect(payload[0], str, "isoformat")
    fold = _expect(payload[1], int, "fold")
    if fold not in (0, 1):
        raise ValueError(f"fold must be 0 or 1, got {fold!r}")
    return naive, fold, _decode_tz(payload[2])


def encode_date(value: dt.date) -> str:
    """``isoformat()``."""
    return value.isoformat()


def decode_date(payload: Any) -> dt.date:
    """Inverse of `encode_date`."""
    return dt.date.fromisoformat(_expect(payload, str, "payload"))


def encode_timedelta(value: dt.timedelta) -> list[int]:
    """``[days, seconds, microseconds]``: exact, unlike a float of total seconds."""
    return [value.days, value.seconds, value.microseconds]


def decode_timedelta(payload: Any) -> dt.timedelta:
    """Inverse of `encode_timedelta`."""
    _expect(payload, list, "payload")
    if len(payload) != 3:
        raise ValueError(f"expected [days, seconds, microseconds], got {payload!r}")
    days, seconds, microseconds = (_expect(part, int, "timedelta field") for part in payload)
    return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)


def encode_decimal(value: Decimal) -> str:
    """``str()``: exact for every Decimal, including NaN payloads, signs and exponents."""
    return str(value)


def decode_decimal(payload: Any) -> Decimal:
    """Inverse of `encode_decimal`."""
    return Decimal(_expect(payload, str, "payload"))


def encode_uuid(value: uuid.UUID) -> str:
    """Canonical hyphenated form."""
    return str(value)


def decode_uuid(payload: Any) -> uuid.UUID:
    """Inverse of `encode_uuid`."""
    return uuid.UUID(_expect(payload, str, "payload"))


def encode_bytes(value: bytes | bytearray) -> str:
    """Standard base64 with padding."""
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def decode_bytes(payload: Any) -> bytes:
    """Inverse of `encode_bytes`; rejects anything but canonical base64."""
    return binascii.a2b_base64(_expect(payload, str, "payload"), strict_mode=True)


def decode_bytearray(payload: Any) -> bytearray:
    """Like `decode_bytes`, as a bytearray."""
    return bytearray(decode_bytes(payload))


_NON_FINITE: Final = frozenset({"nan", "inf", "-inf"})


def encode_non_finite(value: float) -> str:
    """``"nan"``, ``"inf"`` or ``"-inf"`` (the sign and payload of a NaN are not kept)."""
    if value != value:
        return "nan"
    return "inf" if value > 0 else "-inf"


def decode_non_finite(payload: Any) -> float:
    """Inverse of `encode_non_finite`."""
    if type(payload) is not str or payload not in _NON_FINITE:
        raise ValueError(f"expected 'nan', 'inf' or '-inf', got {payload!r}")
    # A fresh object each time: a set may hold several NaNs, distinct only by identity.
    return float(payload)


_DECIMAL_BITS: Final = 14_280
"""An int of at most this many bits has at most 4,299 decimal digits (within `MAX_INT_DIGITS`)."""

_CANONICAL_DECIMAL: Final = re.compile(r"-?[1-9][0-9]*")
_CANONICAL_HEX: Final = re.compile(r"-?0x[1-9a-f][0-9a-f]*")
"""What `encode_big_int` writes: no sign but '-', no leading zeros, no '_', no whitespace,
ASCII digits only (``int()`` would take all of those, and other scripts' digits too)."""

_MAX_HEX_TEXT: Final = len("-0x") + -(-MAX_INT_BITS // 4)


def encode_big_int(value: int) -> str:
    """Decimal digits; hex (``0x...``) beyond `MAX_INT_DIGITS` digits.

    Raises:
        EncodeFailure: The int has more than `MAX_INT_BITS` bits (the decoder refuses it).
    """
    bits = value.bit_length()
    if bits > MAX_INT_BITS:
        raise EncodeFailure(
            f"int of {bits:,} bits: larger than the {MAX_INT_BITS:,} bits the serializer "
            "carries; send it as bytes (int.to_bytes) or a file",
            value,
        )
    if bits <= _DECIMAL_BITS:
        try:
            return str(value)
        except ValueError:
            pass  # this process lowered sys.set_int_max_str_digits
    # Decimal conversion is quadratic, hex linear (and exempt from the int-to-str limit). The
    # cut-off does not depend on this process's limit, so any decoder accepts the result.
    return hex(value)


def decode_big_int(payload: Any) -> int:
    """Inverse of `encode_big_int`; only its canonical output is accepted.

    A value within the signed 64-bit range is refused: the encoder writes those as plain
    JSON ints, so the tag is never needed for them.
    """
    text = _expect(payload, str, "payload")
    if _CANONICAL_DECIMAL.fullmatch(text):
        digits = len(text) - (text[0] == "-")
        if digits > MAX_INT_DIGITS:
            raise ValueError(f"{digits:,} decimal digits: more than {MAX_INT_DIGITS:,}")
        value = int(text)
    elif _CANONICAL_HEX.fullmatch(text):
        if len(text) > _MAX_HEX_TEXT:
            raise ValueError(f"{len(text):,} characters: more than {MAX_INT_BITS:,} bits")
        value = int(text, 16)
        if value.bit_length() > MAX_INT_BITS:
            raise ValueError(f"{value.bit_length():,} bits: more than {MAX_INT_BITS:,}")
    else:
        raise ValueError(
            "expected decimal digits, or 0x and lowercase hex digits, after an optional '-' "
            "and without leading zeros"
        )
    if INT_MIN <= value <= INT_MAX:
        raise ValueError("the value fits in 64 bits, so it is never tagged")
    return value
