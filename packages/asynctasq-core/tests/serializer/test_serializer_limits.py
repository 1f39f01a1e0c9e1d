"""Hostile payloads: decoding stays bounded in time and memory, and refuses what is beyond.

Whoever can write to the broker chooses every byte of a task's arguments, and the worker
decodes them on its event loop. The bounds are `asynctasq.serializer.limits`; these tests
build the payloads an attacker would (hash-colliding set members, a new Flag value per
message, non-canonical big ints, huge strings quoted in error messages, deep nesting) and
check that each is decoded or refused quickly, with a `DeserializationError` naming the
limit. Timings are generous (the machine is shared); where it can, a test counts operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from asynctasq.serializer import (
    TAG_KEY,
    VALUE_KEY,
    DeserializationError,
    SerializationError,
    dumps,
    from_wire,
    from_wire_async,
    limits,
    loads,
    register_hook,
    register_type,
    to_wire,
)
from asynctasq.serializer import decode as decode_module

M61 = 2**61 - 1
"""CPython reduces numeric hashes modulo this prime: the ints ``k * M61`` all hash to 0."""


def node(tag: str, value: Any) -> dict[str, Any]:
    return {TAG_KEY: tag, VALUE_KEY: value}


def big(value: int) -> dict[str, Any]:
    return node("int", str(value))


def refused(tree: Any, fragment: str) -> DeserializationError:
    with pytest.raises(DeserializationError, match=re.escape(fragment)) as caught:
        from_wire(tree)
    return caught.value


def timed(call: Callable[[], Any]) -> float:
    """CPU seconds ``call`` took in this thread, whether it returned or raised a
    DeserializationError. CPU time, not wall time: the bound is on the decoder's work, and
    other processes on a busy machine (a parallel test run) must not make it fail."""
    started = time.thread_time()
    with contextlib.suppress(DeserializationError):
        call()
    return time.thread_time() - started


def over_the_wire(tree: Any) -> Any:
    """The tree as the worker sees it: fresh objects from orjson, nothing shared."""
    return orjson.loads(orjson.dumps(tree))


# -- big ints --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [2**63, -(2**63) - 1, 2**64, -(2**200), 10**4299, 2**14_280 - 1, 2**14_281, -(10**5000)],
    ids=lambda value: f"{value.bit_length()}-bits",
)
def test_big_ints_round_trip_in_their_canonical_form(value: int) -> None:
    tree = to_wire(value)
    assert from_wire(tree) == value
    assert loads(dumps(value)) == value


def test_the_encoder_writes_decimal_up_to_the_digit_limit_and_hex_beyond() -> None:
    assert to_wire(2**14_280 - 1)[VALUE_KEY] == str(2**14_280 - 1)  # 4,299 digits
    assert to_wire(2**14_281)[VALUE_KEY] == hex(2**14_281)
    assert to_wire(-(10**5000))[VALUE_KEY] == hex(-(10**5000))


def test_the_encoding_does_not_depend_on_the_process_digit_limit() -> None:
    # A producer that lifted the int-to-str limit must still write what any worker reads.
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        tree = to_wire(10**5000)
    finally:
        sys.set_int_max_str_digits(previous)
    assert tree[VALUE_KEY].startswith("0x")
    assert from_wire(tree) == 10**5000


@pytest.mark.parametrize(
    "text",
    ["1", "-1", "9223372036854775807", "-9223372036854775808", "0x7fffffffffffffff"],
)
def test_a_big_int_tag_for_a_64_bit_value_is_refused(text: str) -> None:
    # The encoder writes those as JSON ints; the tag never carries one.
    refused(node("int", text), "fits in 64 bits")


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(
    "text",
    [
        "018446744073709551616",
        "+18446744073709551616",
        " 18446744073709551616",
        "18446744073709551616\n",
        "18_446_744_073_709_551_616",
        "-018446744073709551616",
        "0X10000000000000000",
        "0x010000000000000000",
        "0x1AAAAAAAAAAAAAAAA",
        "0o2000000000000000000000",
        "0b1" + "0" * 64,
        "18446744073709551616".translate(ARABIC_INDIC),
        "1e20",
        "0",
        "",
        "-",
        "0x",
        "-0x",
    ],
)
def test_a_non_canonical_big_int_is_refused(text: str) -> None:
    # int(text, 0) took most of these; only what encode_big_int writes is accepted now.
    error = refused(node("int", text), "malformed 'int' node")
    assert error.tag == "int"


def test_big_int_digits_are_bounded() -> None:
    digits = limits.MAX_INT_DIGITS
    assert from_wire(node("int", "1" + "0" * (digits - 1))) == 10 ** (digits - 1)
    refused(node("int", "1" + "0" * digits), f"{digits + 1:,} decimal digits")
    bits = limits.MAX_INT_BITS
    assert from_wire(to_wire(2**bits - 1)) == 2**bits - 1
    refused(node("int", hex(2**bits)), f"more than {bits:,}")
    refused(node("int", "0x" + "f" * (bits // 4 + 10)), f"more than {bits:,} bits")


def test_the_encoder_refuses_an_int_the_decoder_would_refuse() -> None:
    with pytest.raises(SerializationError, match="larger than the 1,000,000 bits"):
        to_wire([2**limits.MAX_INT_BITS])


def test_a_huge_big_int_text_is_refused_quickly() -> None:
    # Decimal conversion is quadratic: 5 million digits would take minutes.
    assert timed(lambda: from_wire(node("int", "9" * 5_000_000))) < 2


# -- hash flooding ---------------------------------------------------------------------------


def colliding_ints(count: int) -> list[dict[str, Any]]:
    """Big-int nodes of distinct values that all hash alike (outside the 64-bit range)."""
    return [big(k * M61) for k in range(5, 5 + count)]


def test_the_reported_attack_is_refused_quickly() -> None:
    # 60,000 such ints in a set took about 30 s to decode, on the worker's event loop.
    tree = over_the_wire(node("set", colliding_ints(60_000)))
    started = time.thread_time()
    error = refused(tree, f"share one hash value: more than the {limits.MAX_EQUAL_HASHES}")
    assert time.thread_time() - started < 2
    assert error.tag == "set"
    assert "60,000 members" in error.reason


def tuples_ending_in(ints: list[dict[str, Any]]) -> list[Any]:
    # Equal prefixes: each comparison of two of them walks the whole tuple.
    return [node("tuple", ["prefix", 1, 2.5, i]) for i in ints]


def uuids_hashing_alike(count: int) -> list[Any]:
    return [node("uuid", str(uuid.UUID(int=k * M61))) for k in range(1, count + 1)]


def decimals_hashing_alike(count: int) -> list[Any]:
    return [node("decimal", str(k * M61)) for k in range(1, count + 1)]


FLOODS: dict[str, Callable[[int], Any]] = {
    "set": lambda n: node("set", colliding_ints(n)),
    "frozenset": lambda n: node("frozenset", colliding_ints(n)),
    "map keys": lambda n: node("map", [[key, None] for key in colliding_ints(n)]),
    "tuples": lambda n: node("set", tuples_ending_in(colliding_ints(n))),
    "uuids": lambda n: node("frozenset", uuids_hashing_alike(n)),
    "decimals": lambda n: node("set", decimals_hashing_alike(n)),
    "nested": lambda n: [{"a": node("tuple", [node("set", colliding_ints(n))])}],
}


@pytest.mark.parametrize("flood", FLOODS.values(), ids=FLOODS.keys())
def test_colliding_members_are_accepted_up_to_the_limit_then_refused(
    flood: Callable[[int], Any],
) -> None:
    limit = limits.MAX_EQUAL_HASHES
    from_wire(flood(limit))  # decodes
    refused(flood(limit + 1), f"{limit + 1} ")
    assert timed(lambda: from_wire(over_the_wire(flood(20_000)))) < 2


class Collider:
    """Every instance hashes alike; comparisons are counted."""

    comparisons = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        Collider.comparisons += 1
        return isinstance(other, Collider) and other.n == self.n


@pytest.fixture
def colliders() -> Iterator[type[Collider]]:
    register_type(Collider, tag="test.collider", encode=lambda c: c.n, decode=Collider)
    Collider.comparisons = 0
    return Collider


def test_a_flood_is_refused_before_any_member_is_compared(colliders: type[Collider]) -> None:
    tree = node("set", [node("test.collider", n) for n in range(10_000)])
    refused(tree, "10,000 members share one hash value")
    assert colliders.comparisons == 0  # building that set would have taken 50 million


def test_comparisons_stay_quadratic_only_in_the_limit(colliders: type[Collider]) -> None:
    limit = limits.MAX_EQUAL_HASHES
    decoded = from_wire(node("set", [node("test.collider", n) for n in range(limit)]))
    assert len(decoded) == limit
    # CPython's set compares colliding members about n**2 / 2 to n**2 times (it probes again
    # after growing): bounded by the limit, whatever the size of the set.
    assert colliders.comparisons <= limit * limit


def test_the_powers_of_two_below_2_976_still_round_trip() -> None:
    # hash(2**k) == 2**(k % 61): the one common shape of distinct values sharing a hash.
    ints = {2**k for k in range(976)}
    floats = {2.0**k for k in range(-488, 488)}
    assert loads(dumps(ints)) == ints
    assert loads(dumps(floats)) == floats
    assert loads(dumps(dict.fromkeys(ints, 1))) == dict.fromkeys(ints, 1)


def test_unhashable_members_are_still_reported_as_such() -> None:
    refused(node("set", [[1], *list(range(100))]), "unhashable type: 'list'")
    refused(node("map", [[[1], 2]] + [[i, i] for i in range(100)]), "unhashable type: 'list'")


def test_a_5_mb_hostile_payload_is_decoded_or_refused_in_under_2_s() -> None:
    # The worst that passes: groups of MAX_EQUAL_HASHES long tuples that hash alike and
    # differ only in their last item, each comparison walking the shared prefix.
    group, prefix = limits.MAX_EQUAL_HASHES, ["a"] * 1000
    members = [
        node("tuple", [*prefix, big((k % group + 5) * M61 + (k // group) * 2**70)])
        for k in range(1300)
    ]
    hostile = orjson.dumps(node("set", members))
    assert len(hostile) > 5_000_000
    assert timed(lambda: loads(hostile)) < 2
    # One step more (groups of twice the limit) is refused, as fast.
    members = [
        node("tuple", [*prefix, big((k % (2 * group) + 5) * M61 + (k // (2 * group)) * 2**70)])
        for k in range(1300)
    ]
    beyond = orjson.dumps(node("set", members))
    with pytest.raises(DeserializationError, match="share one hash value"):
        loads(beyond)
    assert timed(lambda: loads(beyond)) < 2


# -- tagged values per message ---------------------------------------------------------------


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(decode_module, "MAX_TAGGED_VALUES", 50)
    return 50


def test_tagged_values_per_message_are_bounded(small_budget: int) -> None:
    assert from_wire([node("tuple", [])] * small_budget) == [()] * small_budget
    error = refused([node("tuple", [])] * (small_budget + 1), f"more than {small_budget}")
    assert error.path == f"payload -> [{small_budget}]"
    # Every level counts: 10 sets of 4 dates each, plus 10 tuples, is 60.
    dates = [node("date", "2024-01-01")] * 4
    refused([node("tuple", [node("set", dates)])] * 10, "tagged values in one message")


def test_the_budget_is_per_message(small_budget: int) -> None:
    for _ in range(3):
        from_wire([node("tuple", [])] * small_budget)


def test_a_registered_decoder_decoding_more_shares_the_budget(small_budget: int) -> None:
    @dataclass
    class Box:
        items: Any

    # A codec whose decoder decodes a wire tree of its own: still one message.
    register_type(
        Box,
        tag="test.box",
        encode=lambda b: b.items,
        decode=lambda raw: Box(from_wire(orjson.loads(raw))),
    )
    inner = orjson.dumps([node("tuple", [])] * 30).decode()
    assert from_wire([node("test.box", inner)]) == [Box([()] * 30)]
    refused([node("test.box", inner)] * 2, "tagged values in one message")


def test_the_real_budget_refuses_a_million_and_one_values_in_seconds() -> None:
    tree = [node("tuple", [])] * (limits.MAX_TAGGED_VALUES + 1)
    assert timed(lambda: refused(tree, "more than 1,000,000 tagged values")) < 10


# -- serializer-hook values ------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: int


@dataclass(frozen=True)
class Team:
    name: str
    lead: User


class UserHook:
    tag = "test.user"

    def __init__(self) -> None:
        self.decoded = 0

    def matches(self, obj: object) -> bool:
        return isinstance(obj, User)

    def encode(self, obj: User) -> Any:
        return {"id": obj.id}

    async def decode(self, data: Any) -> User:
        self.decoded += 1
        await asyncio.sleep(0)
        return User(data["id"])


class TeamHook:
    tag = "test.team"

    def matches(self, obj: object) -> bool:
        return isinstance(obj, Team)

    def encode(self, obj: Team) -> Any:
        return [obj.name, obj.lead]

    async def decode(self, data: Any) -> Team:
        return Team(*data)


async def test_hook_values_per_message_are_bounded_before_any_is_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decode_module, "MAX_HOOK_VALUES", 3)
    users = UserHook()
    register_hook(users)
    register_hook(TeamHook())
    assert await from_wire_async(to_wire([User(1), User(2), User(3)])) == [
        User(1),
        User(2),
        User(3),
    ]
    assert users.decoded == 3
    users.decoded = 0
    with pytest.raises(DeserializationError, match="more than 3 serializer-hook values"):
        await from_wire_async(to_wire([User(n) for n in range(1000)]))
    assert users.decoded == 0  # refused before a single query
    # Values inside hook payloads count too: two teams and their leads are four.
    with pytest.raises(DeserializationError, match="more than 3 serializer-hook values"):
        await from_wire_async(to_wire([Team("a", User(1)), Team("b", User(2))]))


async def test_hook_payload_values_count_against_the_message_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decode_module, "MAX_TAGGED_VALUES", 10)
    register_hook(UserHook())
    register_hook(TeamHook())
    # Each team is a hook node, a tuple payload... the pieces add up across the tasks.
    # 5 teams and 5 leads are 10 tagged values; 6 of each, 12.
    assert await from_wire_async(to_wire([Team("t", User(n)) for n in range(5)]))
    tree = to_wire([Team("t", User(n)) for n in range(6)])
    with pytest.raises(DeserializationError, match="more than 10 tagged values"):
        await from_wire_async(tree)


async def test_a_bad_nested_hook_payload_is_still_located() -> None:
    register_hook(UserHook())
    register_hook(TeamHook())
    bad_user = node("test.user", {"id": node("uuid", "bad")})
    tree = over_the_wire([0, {"k": node("test.team", ["core", bad_user])}])
    with pytest.raises(DeserializationError) as caught:
        await from_wire_async(tree)
    assert caught.value.path == (
        "payload -> [1]['k']<test.team payload>[1]<test.user payload>['id']"
    )
    assert caught.value.tag == "uuid"


# -- Flag values -----------------------------------------------------------------------------


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Wide(enum.IntFlag):
    """14 single bits: 16,384 combinations, more than decoding may create."""

    B0 = enum.auto()
    B1 = enum.auto()
    B2 = enum.auto()
    B3 = enum.auto()
    B4 = enum.auto()
    B5 = enum.auto()
    B6 = enum.auto()
    B7 = enum.auto()
    B8 = enum.auto()
    B9 = enum.auto()
    B10 = enum.auto()
    B11 = enum.auto()
    B12 = enum.auto()
    B13 = enum.auto()


class Capped(enum.Flag):
    """Its own class: the cache of combined values it grows lives as long as the process."""

    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    D = enum.auto()
    E = enum.auto()
    F = enum.auto()


def flag(cls: type[enum.Flag], value: Any) -> dict[str, Any]:
    return node("enum", [f"{__name__}:{cls.__qualname__}", value])


def test_combined_flags_round_trip() -> None:
    combined = re.IGNORECASE | re.MULTILINE
    assert loads(dumps(combined)) is combined
    assert loads(dumps(Perm.R | Perm.X)) is Perm.R | Perm.X
    assert loads(dumps(Perm(0))) is Perm(0)
    assert loads(dumps(Wide.B3 | Wide.B13)) == Wide.B3 | Wide.B13
    assert from_wire(flag(Perm, 6)) is Perm.R | Perm.W


def test_flag_values_beyond_the_defined_members_are_refused_and_not_cached() -> None:
    # re.RegexFlag keeps unknown bits (boundary KEEP): each new value used to be cached in
    # the class for good, 1 million of them for 420 MB.
    cached = len(re.RegexFlag._value2member_map_)
    ref = "re:RegexFlag"
    for k in range(1, 2001):
        with pytest.raises(DeserializationError, match="is not a combination of RegexFlag"):
            from_wire(node("enum", [ref, k * 4096]))
    assert len(re.RegexFlag._value2member_map_) == cached


@pytest.mark.parametrize("value", [-1, -7, 8, 2**70, "4", None, [4]])
def test_a_flag_value_that_is_not_a_combination_is_refused(value: Any) -> None:
    refused(flag(Perm, value), "is not a combination of Perm members")


def test_new_flag_combinations_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module, "MAX_FLAG_COMBINATIONS", 10)
    created: list[int] = []
    refusals: list[str] = []
    for value in range(64):
        try:
            member = from_wire(flag(Capped, value))
        except DeserializationError as error:
            refusals.append(error.reason)
        else:
            assert member.value == value
            created.append(value)
    assert len(Capped._value2member_map_) <= len(Capped._member_map_) + 10
    assert len(refusals) >= 64 - len(Capped._member_map_) - 10
    assert all("already holds 10 combined values" in reason for reason in refusals)
    # What is cached, and every defined member, still decodes.
    for value in created:
        assert from_wire(flag(Capped, value)).value == value
    for member in Capped:
        assert from_wire(flag(Capped, member.value)) is member


def test_hostile_flag_messages_leave_the_class_bounded() -> None:
    for value in range(1 << 14):
        with contextlib.suppress(DeserializationError):
            from_wire(flag(Wide, value))
    assert len(Wide._value2member_map_) <= len(Wide._member_map_) + limits.MAX_FLAG_COMBINATIONS


# -- error messages stay short ---------------------------------------------------------------


@pytest.mark.parametrize(
    "tree",
    [
        node("datetime", "x" * 5_000_000),
        node("datetime", ["2020-01-01T00:00:00", 0, ["zone", "Europe/" + "x" * 5_000_000]]),
        node("datetime", ["2020-01-01T00:00:00", 0, ["zone", "No/Such_Zone"]]),
        node("set", [[1], *list(range(1000000))]),
        node("map", [[node("int", hex(2**20_000)), node("uuid", "bad")]]),
        node("enum", ["re:RegexFlag", "x" * 5_000_000]),
        node("tuple", "x" * 5_000_000),
    ],
    ids=["datetime", "zone key", "unknown zone", "set", "map key", "enum", "tuple"],
)
def test_a_huge_payload_is_not_copied_into_the_error(tree: Any) -> None:
    started = time.thread_time()
    with pytest.raises(DeserializationError) as caught:
        from_wire(tree)
    assert time.thread_time() - started < 2
    assert len(str(caught.value)) < 1000


def test_a_huge_map_key_is_named_by_its_size() -> None:
    key = node("int", hex(2**20_000))
    error = refused(node("map", [[key, node("uuid", "bad")]]), "malformed 'uuid'")
    assert error.path == "payload -> [<int of 20,001 bits>]"


def test_a_long_zone_key_is_refused_without_a_lookup() -> None:
    refused(
        node("datetime", ["2020-01-01T00:00:00", 0, ["zone", "a" * 256]]),
        "zone key of 256 characters",
    )


# -- nesting and other payload shapes ---------------------------------------------------------


def deep_tuples(levels: int) -> Any:
    text = '{"__aq__":"tuple","v":[' * levels + "]}" * levels
    return orjson.loads(text)


async def test_deep_nesting_is_refused_as_such() -> None:
    tree = deep_tuples(511)  # as deep as orjson reads
    with pytest.raises(DeserializationError, match="nested too deeply"):
        from_wire(tree)
    with pytest.raises(DeserializationError, match="nested too deeply"):
        await from_wire_async(tree)
    deep: Any = []
    for _ in range(100_000):  # a tree built in Python, deeper than any JSON
        deep = [deep, node("tuple", [])]
    with pytest.raises(DeserializationError, match="nested too deeply"):
        from_wire(deep)
    with pytest.raises(DeserializationError, match="nested too deeply"):
        await from_wire_async(deep)


def test_decimals_with_extreme_exponents_or_digits_decode_quickly() -> None:
    huge, tiny = Decimal("1e999999999"), Decimal("-1e-999999999")
    assert from_wire(node("set", [node("decimal", str(huge)), node("decimal", str(tiny))])) == {
        huge,
        tiny,
    }
    digits = "9" * 1_000_000
    assert timed(lambda: from_wire(node("decimal", digits))) < 2
    refused(node("decimal", "1e9999999999999999999"), "malformed 'decimal' node")


@pytest.mark.parametrize(
    ("tree", "fragment"),
    [
        (node("timedelta", [10**18, 0, 0]), "malformed 'timedelta' node"),
        (node("timedelta", [0, 2**62, 0]), "malformed 'timedelta' node"),
        (node("datetime", "99999-01-01T00:00:00"), "malformed 'datetime' node"),
        (
            node("datetime", ["2020-01-01T00:00:00", 0, ["fixed", 2**63 - 1, None]]),
            "malformed 'datetime' node",
        ),
        (node("time", ["12:00", 0, ["fixed", 86_400_000_000, "x"]]), "malformed 'time' node"),
    ],
)
def test_out_of_range_dates_and_durations_are_malformed(tree: Any, fragment: str) -> None:
    refused(tree, fragment)


def test_timedelta_extremes_still_round_trip() -> None:
    for value in (timedelta.max, timedelta.min, -timedelta(microseconds=1)):
        assert loads(dumps(value)) == value
