"""Exact round-trips: property-based over arbitrarily nested values, plus pinned edge cases."""

from __future__ import annotations

import enum
import math
import uuid
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynctasq.serializer import (
    TAG_KEY,
    VALUE_KEY,
    dumps,
    from_wire,
    from_wire_async,
    loads,
    to_wire,
    to_wire_with_info,
)

pytestmark = pytest.mark.slow  # its property tests take most of a minute together


class Color(enum.Enum):
    RED = 1
    GREEN = "green"
    PAIR = (1, 2)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    READ = "r"
    WRITE = "w"


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Bits(enum.IntFlag):
    A = 1
    B = 2


class Outer:
    class Inner(enum.Enum):
        ONE = 1


# -- exact comparison ------------------------------------------------------------------------


def same_tz(a: tzinfo | None, b: tzinfo | None) -> bool:
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    if isinstance(a, zoneinfo.ZoneInfo):
        assert isinstance(b, zoneinfo.ZoneInfo)
        return a.key == b.key
    return a.utcoffset(None) == b.utcoffset(None) and a.tzname(None) == b.tzname(None)


def same(a: Any, b: Any) -> bool:
    """Equality that also demands equal types, signs, exponents, folds and time zones."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime | time):
        return (
            a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.fold == b.fold
            and same_tz(a.tzinfo, b.tzinfo)
        )
    if isinstance(a, enum.Enum):
        return a is b
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, set | frozenset):
        unmatched = list(b)
        for x in a:
            match = next((i for i, y in enumerate(unmatched) if same(x, y)), None)
            if match is None:
                return False
            del unmatched[match]
        return not unmatched
    return bool(a == b)


def assert_json_native(tree: Any) -> None:
    t = type(tree)
    if t is dict:
        for k, v in tree.items():
            assert type(k) is str
            assert_json_native(v)
    elif t is list:
        for v in tree:
            assert_json_native(v)
    elif t is int:
        assert -(2**63) <= tree < 2**63
    elif t is float:
        assert math.isfinite(tree)
    else:
        assert t in (str, bool, type(None)), t


# -- strategies ------------------------------------------------------------------------------

_MAX_OFFSET = timedelta(hours=24) - timedelta(microseconds=1)
offsets = st.timedeltas(min_value=-_MAX_OFFSET, max_value=_MAX_OFFSET)
fixed_timezones = st.one_of(
    st.just(UTC),
    st.builds(timezone, offsets),
    st.builds(timezone, offsets, st.text(max_size=6)),
)
HAVE_TZDATA = bool(zoneinfo.available_timezones())
zone_timezones = st.timezones() if HAVE_TZDATA else st.nothing()
any_timezone = st.none() | fixed_timezones | zone_timezones

datetimes = st.builds(
    lambda d, fold: d.replace(fold=fold),
    st.datetimes(timezones=any_timezone),
    st.integers(0, 1),
)
times = st.builds(
    lambda t, fold: t.replace(fold=fold),
    st.times(timezones=any_timezone),
    st.integers(0, 1),
)
integers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.sampled_from([-(2**63), 2**63 - 1, -(2**63) - 1, 2**63, 2**64 - 1, 2**64, -(2**64)]),
)
floats = st.floats() | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324])
hashable_decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).filter(lambda d: not d.is_snan()),
    st.builds(
        lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=1, max_size=30),
        st.integers(-40, 40),
    ),
    st.sampled_from(
        [Decimal(s) for s in ("NaN", "-NaN", "NaN123", "Infinity", "-Infinity", "-0", "0E-10")]
    ),
)
decimals = hashable_decimals | st.sampled_from([Decimal("sNaN"), Decimal("-sNaN12")])
enum_members = st.sampled_from(
    [
        *Color,
        *Level,
        *Mode,
        *Perm,
        Perm.R | Perm.W,
        Perm(0),
        *Bits,
        Bits.A | Bits.B,
        Outer.Inner.ONE,
    ]
)
dict_keys = st.text(max_size=8) | st.sampled_from([TAG_KEY, VALUE_KEY, ""])

hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    integers,
    floats,
    st.text(max_size=8),
    st.binary(max_size=8),
    st.dates(),
    datetimes,
    times,
    st.timedeltas(),
    hashable_decimals,
    st.uuids(),
    enum_members,
)
hashables = st.recursive(
    hashable_scalars,
    lambda children: (
        st.lists(children, max_size=4).map(tuple) | st.frozensets(children, max_size=4)
    ),
    max_leaves=10,
)
scalars = hashable_scalars | decimals | st.binary(max_size=8).map(bytearray)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(dict_keys, children, max_size=5),
        st.dictionaries(hashables, children, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    )


values = st.recursive(scalars, _containers, max_leaves=25)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children) | st.dictionaries(st.text().filter(lambda k: k != TAG_KEY), children)
    ),
    max_leaves=25,
)

roundtrip_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# -- properties ------------------------------------------------------------------------------


@roundtrip_settings
@given(values)
def test_round_trips_exactly(value: Any) -> None:
    # One property checks every stage, so the (costly) generation is shared.
    tree = to_wire(value)
    assert_json_native(tree)
    assert same(from_wire(tree), value)
    data = orjson.dumps(tree)
    assert orjson.loads(data) == tree
    assert dumps(value) == data
    assert same(loads(data), value)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_plain_json_is_its_own_wire_form(value: Any) -> None:
    assert to_wire(value) is value
    assert from_wire(value) is value
    assert to_wire_with_info(value) == (value, False)


@settings(max_examples=100, deadline=None)
@given(values)
async def test_from_wire_async_without_hooks_matches_from_wire(value: Any) -> None:
    tree, uses_async = to_wire_with_info(value)
    assert uses_async is False
    assert same(await from_wire_async(tree), value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(dict_keys, scalars | st.lists(scalars, max_size=3), max_size=3))
def test_user_dicts_holding_the_tag_key_come_back_unchanged(value: dict[str, Any]) -> None:
    value = {TAG_KEY: value, **value}
    assert same(loads(dumps(value)), value)


# -- pinned cases ----------------------------------------------------------------------------

EDGE_CASES: list[Any] = [
    True,
    False,
    [True, 1, 1.0, False, 0],
    {"flag": True},
    (True, 1),
    {True: "t", 2: "two"},
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    2**63,
    -(2**63) - 1,
    2**64,
    10**5000,  # beyond the int-to-str digit limit: goes out as hex
    -(10**5000),
    Decimal("NaN"),
    Decimal("-sNaN7"),
    Decimal("Infinity"),
    Decimal("-0"),
    Decimal("1.50"),
    Decimal("1E+2"),
    Decimal("-1.2345E-700"),
    datetime(2024, 1, 2, 3, 4, 5, 6),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=5, seconds=7, microseconds=11))),
    datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=1), "CET")),
    datetime(2024, 1, 2, fold=1),
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=23, minutes=59))),
    datetime(2024, 1, 2, tzinfo=timezone(timedelta(microseconds=1))),
    datetime(2024, 1, 2, tzinfo=timezone(-timedelta(microseconds=1))),
    time(1, 2, 3, 4),
    time(tzinfo=timezone(timedelta(microseconds=1))),
    time(1, 2, tzinfo=timezone(timedelta(minutes=-90))),
    time(1, 2, tzinfo=timezone(timedelta(minutes=-90), "X"), fold=1),
    date(2024, 2, 29),
    timedelta(days=-1, microseconds=1),
    timedelta.max,
    uuid.UUID(int=0),
    b"\x00\xff",
    b"",
    bytearray(b"abc"),
    set(),
    frozenset(),
    {frozenset({1, 2}), (1, "a")},
    (),
    ((),),
    [()],
    {(1, 2): [3], 1: "one", None: 0, date(2020, 1, 1): 1.5},
    {TAG_KEY: "tuple", VALUE_KEY: [1, 2]},
    {TAG_KEY: "unknown-tag", VALUE_KEY: None},
    {TAG_KEY: 1},
    [{TAG_KEY: {TAG_KEY: "dict"}}],
    {TAG_KEY: 1, 2: 3},
    Color.PAIR,
    Perm.R | Perm.X,
    Perm(0),
    Mode.READ,
    Level.HIGH,
    Outer.Inner.ONE,
    {"deep": [{"a": ({"b": {1, 2}},)}]},
]


@pytest.mark.parametrize("value", EDGE_CASES, ids=lambda v: type(v).__name__)
def test_edge_cases_round_trip(value: Any) -> None:
    tree = to_wire(value)
    assert_json_native(tree)
    assert same(from_wire(tree), value)
    assert same(loads(dumps(value)), value)


@pytest.mark.skipif(not HAVE_TZDATA, reason="no time zone database installed")
def test_zoneinfo_datetimes_keep_zone_and_fold() -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    ambiguous = datetime(2023, 10, 29, 2, 30, tzinfo=paris, fold=1)
    back = loads(dumps(ambiguous))
    assert back.tzinfo is paris
    assert back.fold == 1
    assert back.utcoffset() == timedelta(hours=1)


def test_bool_is_not_an_int_on_the_wire() -> None:
    assert dumps([True, 1]) == b"[true,1]"
    back = loads(dumps({"t": True, "one": 1}))
    assert type(back["t"]) is bool
    assert type(back["one"]) is int


def test_lists_stay_lists_and_tuples_stay_tuples() -> None:
    back = loads(dumps([(1, [2, (3,)]), [4]]))
    assert back == [(1, [2, (3,)]), [4]]
    assert type(back[0]) is tuple
    assert type(back[0][1]) is list
    assert type(back[0][1][1]) is tuple


WIRE_FORMAT: list[tuple[Any, Any]] = [
    ((1, 2), {TAG_KEY: "tuple", VALUE_KEY: [1, 2]}),
    ({3}, {TAG_KEY: "set", VALUE_KEY: [3]}),
    (frozenset({3}), {TAG_KEY: "frozenset", VALUE_KEY: [3]}),
    ({1: "a"}, {TAG_KEY: "map", VALUE_KEY: [[1, "a"]]}),
    ({TAG_KEY: 1}, {TAG_KEY: "dict", VALUE_KEY: {TAG_KEY: 1}}),
    (b"hi", {TAG_KEY: "bytes", VALUE_KEY: "aGk="}),
    (bytearray(b"hi"), {TAG_KEY: "bytearray", VALUE_KEY: "aGk="}),
    (
        datetime(2024, 5, 1, 12, tzinfo=UTC),
        {TAG_KEY: "datetime", VALUE_KEY: "2024-05-01T12:00:00+00:00"},
    ),
    (date(2024, 5, 1), {TAG_KEY: "date", VALUE_KEY: "2024-05-01"}),
    (time(12, 30), {TAG_KEY: "time", VALUE_KEY: "12:30:00"}),
    (timedelta(days=1, seconds=2, microseconds=3), {TAG_KEY: "timedelta", VALUE_KEY: [1, 2, 3]}),
    (Decimal("1.10"), {TAG_KEY: "decimal", VALUE_KEY: "1.10"}),
    (uuid.UUID(int=1), {TAG_KEY: "uuid", VALUE_KEY: "00000000-0000-0000-0000-000000000001"}),
    (math.inf, {TAG_KEY: "float", VALUE_KEY: "inf"}),
    (2**64, {TAG_KEY: "int", VALUE_KEY: "18446744073709551616"}),
    (Level.LOW, {TAG_KEY: "enum", VALUE_KEY: [f"{__name__}:Level", 1]}),
]


@pytest.mark.parametrize(("value", "tree"), WIRE_FORMAT, ids=lambda v: type(v).__name__)
def test_wire_format_is_stable(value: Any, tree: Any) -> None:
    # Messages already queued must stay readable: the wire format is a contract.
    assert to_wire(value) == tree
    assert same(from_wire(tree), value)
