"""Errors name the path and the type; malformed payloads and refused imports fail clearly."""

from __future__ import annotations

import collections
import enum
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest

from asynctasq.serializer import (
    TAG_KEY,
    VALUE_KEY,
    DeserializationError,
    SerializationError,
    SerializerError,
    dumps,
    from_wire,
    get_import_guard,
    loads,
    register_type,
    set_import_guard,
    to_wire,
)


class Foo:
    pass


class Shade(enum.Enum):
    DARK = 1


FOO = f"{__name__}.Foo"
HINT = "register it with asynctasq.serializer.register_type(...)"


# -- encoding --------------------------------------------------------------------------------


def test_message_names_root_path_and_type() -> None:
    with pytest.raises(SerializationError) as caught:
        to_wire({"items": [1, 2, Foo()]}, path="argument 'user'")
    error = caught.value
    assert str(error) == (
        f"cannot serialize argument 'user' -> ['items'][2]: object of type 'Foo' ({FOO}); {HINT}"
    )
    assert error.path == "argument 'user' -> ['items'][2]"
    assert error.value_type is Foo
    assert isinstance(error, TypeError)
    assert isinstance(error, SerializerError)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (Foo(), "value"),
        ([Foo()], "value -> [0]"),
        ((1, "a", Foo()), "value -> [2]"),
        ({"a": {"b": (0, [Foo()])}}, "value -> ['a']['b'][1][0]"),
        ({Foo()}, "value -> <set item>"),
        (frozenset({Foo()}), "value -> <set item>"),
        ({1: Foo()}, "value -> [1]"),
        ({(1, Foo()): 2}, "value -> <key (1, <"),
        ({TAG_KEY: Foo()}, f"value -> ['{TAG_KEY}']"),
        ({"x": [1, datetime.now(UTC), {"y": Foo()}]}, "value -> ['x'][2]['y']"),
    ],
)
def test_path_points_at_the_offending_value(value: Any, where: str) -> None:
    with pytest.raises(SerializationError) as caught:
        to_wire(value)
    assert caught.value.path.startswith(where)
    assert f"object of type 'Foo' ({FOO})" in str(caught.value)


def test_dumps_raises_the_same_error() -> None:
    with pytest.raises(SerializationError, match=r"cannot serialize kwargs -> \['x'\]: object"):
        dumps({"x": Foo()}, path="kwargs")


def test_subclasses_of_builtins_are_not_flattened() -> None:
    with pytest.raises(SerializationError, match="a subclass of dict: convert it to a plain dict"):
        to_wire(collections.OrderedDict(a=1))

    class When(datetime):
        pass

    with pytest.raises(SerializationError, match="a subclass of datetime"):
        to_wire([When(2020, 1, 1)])


def test_enum_defined_in_a_function_is_refused_when_encoding() -> None:
    class Local(enum.Enum):
        A = 1

    with pytest.raises(SerializationError, match="defined inside a function") as caught:
        to_wire({"e": Local.A})
    assert caught.value.path == "value -> ['e']"


def test_unserializable_enum_value_is_located() -> None:
    with pytest.raises(SerializationError) as caught:
        to_wire(Holder.BOX)
    assert caught.value.path == "value -> .value"


class Holder(enum.Enum):
    BOX = Foo()


class OpaqueTz(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "OPAQUE"


def test_datetime_with_a_foreign_tzinfo_is_refused() -> None:
    with pytest.raises(
        SerializationError, match="tzinfo of type .*OpaqueTz.* round-trip"
    ) as caught:
        to_wire([datetime(2020, 1, 1, tzinfo=OpaqueTz())])
    assert caught.value.path == "value -> [0]"


def test_circular_structures_fail_cleanly() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="contains itself"):
        to_wire(loop)


async def test_a_circular_argument_fails_the_dispatch_naming_the_argument() -> None:
    from asynctasq import task

    @task(queue="errors")
    async def takes(items: list[Any], label: str) -> None:
        return None

    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="argument 'items' of .*contains itself"):
        await takes(loop, "plain").dispatch()


async def test_a_circular_attribute_fails_the_dispatch_naming_the_attribute() -> None:
    from asynctasq.core.task import BaseTask

    class Holds(BaseTask[None]):
        queue = "errors"

        def __init__(self, items: list[Any], label: str) -> None:
            super().__init__()
            self.items, self.label = items, label

        async def handle(self) -> None:
            return None

    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="attribute 'items' of .*contains itself"):
        await Holds(loop, "plain").dispatch()


def test_nesting_beyond_orjson_limit_is_a_serialization_error() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    with pytest.raises(SerializationError, match="cannot serialize value"):
        dumps(deep)


def test_failing_registered_encoder_is_reported_with_its_tag() -> None:
    def explode(obj: Foo) -> Any:
        raise RuntimeError("boom")

    register_type(Foo, tag="test.foo", encode=explode, decode=lambda data: Foo())
    with pytest.raises(SerializationError) as caught:
        to_wire({"f": Foo()})
    message = str(caught.value)
    assert "'test.foo'" in message
    assert "RuntimeError: boom" in message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_unserializable_registered_payload_is_located() -> None:
    register_type(
        Foo, tag="test.foo", encode=lambda obj: {"inner": object()}, decode=lambda data: Foo()
    )
    with pytest.raises(SerializationError) as caught:
        to_wire([Foo()])
    assert caught.value.path == "value -> [0]<test.foo payload>['inner']"
    assert caught.value.value_type is object


# -- decoding --------------------------------------------------------------------------------


def test_unknown_tag_is_named() -> None:
    with pytest.raises(DeserializationError) as caught:
        from_wire({"a": [{TAG_KEY: "acme.Widget", VALUE_KEY: 1}]})
    error = caught.value
    assert error.tag == "acme.Widget"
    assert error.path == "payload -> ['a'][0]"
    assert "unknown tag 'acme.Widget'" in str(error)
    assert isinstance(error, ValueError)
    assert isinstance(error, SerializerError)


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ({TAG_KEY: "tuple"}, "exactly the keys"),
        ({TAG_KEY: "tuple", VALUE_KEY: [], "x": 1}, "exactly the keys"),
        ({TAG_KEY: 3, VALUE_KEY: []}, "the tag is not a str"),
        ({TAG_KEY: "tuple", VALUE_KEY: "abc"}, "malformed 'tuple' node"),
        ({TAG_KEY: "set", VALUE_KEY: [[1]]}, "unhashable"),
        ({TAG_KEY: "map", VALUE_KEY: [[1]]}, "[key, value] pair"),
        ({TAG_KEY: "map", VALUE_KEY: [[[1], 2]]}, "unhashable"),
        ({TAG_KEY: "dict", VALUE_KEY: [1]}, "malformed 'dict' node"),
        ({TAG_KEY: "bytes", VALUE_KEY: "not base64!"}, "malformed 'bytes' node"),
        ({TAG_KEY: "bytes", VALUE_KEY: 12}, "must be str"),
        ({TAG_KEY: "datetime", VALUE_KEY: "yesterday"}, "malformed 'datetime' node"),
        ({TAG_KEY: "datetime", VALUE_KEY: ["2020-01-01T00:00:00", 2, None]}, "fold"),
        ({TAG_KEY: "datetime", VALUE_KEY: ["2020-01-01T00:00:00", 0, ["mars", 1]]}, "timezone"),
        ({TAG_KEY: "time", VALUE_KEY: ["12:00", True, None]}, "fold must be int"),
        ({TAG_KEY: "timedelta", VALUE_KEY: [1, 2]}, "malformed 'timedelta' node"),
        ({TAG_KEY: "decimal", VALUE_KEY: 1.5}, "must be str"),
        ({TAG_KEY: "decimal", VALUE_KEY: "one"}, "malformed 'decimal' node"),
        ({TAG_KEY: "uuid", VALUE_KEY: "xyz"}, "malformed 'uuid' node"),
        ({TAG_KEY: "float", VALUE_KEY: "1.5"}, "'nan', 'inf' or '-inf'"),
        ({TAG_KEY: "int", VALUE_KEY: "12a"}, "malformed 'int' node"),
        ({TAG_KEY: "enum", VALUE_KEY: ["nocolon", 1]}, "malformed enum class reference"),
        ({TAG_KEY: "enum", VALUE_KEY: [f"{__name__}:Shade", 7]}, "7 is not a valid Shade"),
        ({TAG_KEY: "enum", VALUE_KEY: [f"{__name__}:Foo", 1]}, "is not an Enum class"),
        ({TAG_KEY: "enum", VALUE_KEY: ["os:system", "true"]}, "is not an Enum class"),
        ({TAG_KEY: "enum", VALUE_KEY: ["no_such_module_xyz:E", 1]}, "ModuleNotFoundError"),
    ],
)
def test_malformed_nodes_are_deserialization_errors(node: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DeserializationError, match=re.escape(fragment)) as caught:
        from_wire({"args": [node]})
    assert caught.value.path.startswith("payload -> ['args'][0]")


def test_nested_decode_error_keeps_inner_tag_and_path() -> None:
    tree = {TAG_KEY: "tuple", VALUE_KEY: [1, {TAG_KEY: "uuid", VALUE_KEY: "bad"}]}
    with pytest.raises(DeserializationError) as caught:
        from_wire({"k": tree})
    assert caught.value.tag == "uuid"
    assert caught.value.path == "payload -> ['k'][1]"


def test_invalid_json_is_a_deserialization_error() -> None:
    with pytest.raises(DeserializationError, match="invalid JSON"):
        loads(b"{nope")


def test_failing_registered_decoder_is_reported_with_its_tag() -> None:
    def explode(data: Any) -> Foo:
        raise ValueError("bad data")

    register_type(Foo, tag="test.foo", encode=lambda obj: 1, decode=explode)
    with pytest.raises(DeserializationError, match="'test.foo' failed: ValueError: bad data"):
        loads(dumps(Foo()))


# -- import guard ----------------------------------------------------------------------------


def test_import_guard_sees_the_module_before_import() -> None:
    seen: list[str] = []
    previous = set_import_guard(seen.append)
    assert previous is None
    assert get_import_guard() == seen.append
    assert loads(dumps([Shade.DARK, Shade.DARK])) == [Shade.DARK, Shade.DARK]
    assert seen == [__name__]  # resolved once, then cached for this guard


def test_import_guard_refusal_is_reported_with_its_cause() -> None:
    class Refused(Exception):
        pass

    def guard(module: str) -> None:
        raise Refused(f"{module} is outside the allowed roots")

    data = dumps({"shade": Shade.DARK})
    set_import_guard(guard)
    with pytest.raises(DeserializationError, match="refused by the import guard") as caught:
        loads(data)
    assert caught.value.tag == "enum"
    assert caught.value.path == "payload -> ['shade']"
    assert isinstance(caught.value.__cause__, Refused)


def test_changing_the_guard_drops_cached_classes() -> None:
    data = dumps(Shade.DARK)
    assert loads(data) is Shade.DARK  # cached under "allow everything"

    def deny(module: str) -> None:
        raise PermissionError(module)

    set_import_guard(deny)
    with pytest.raises(DeserializationError, match="PermissionError"):
        loads(data)
