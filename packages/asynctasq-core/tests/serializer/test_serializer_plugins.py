"""register_type, async serializer hooks and their discovery through entry points."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from asynctasq.serializer import (
    TAG_KEY,
    VALUE_KEY,
    DeserializationError,
    HookPlugin,
    SerializationError,
    SerializerHook,
    discover_hooks,
    dumps,
    from_wire,
    from_wire_async,
    isolated_registry,
    loads,
    register_hook,
    register_type,
    to_wire,
    to_wire_with_info,
)
from asynctasq.serializer import plugins as serializer_plugins

# -- register_type ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


class Base:
    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Base) and type(other) is type(self) and other.n == self.n

    def __hash__(self) -> int:
        return hash((type(self), self.n))


class Child(Base):
    pass


class GrandChild(Child):
    pass


def register_money() -> None:
    register_type(
        Money,
        tag="test.money",
        encode=lambda m: (m.amount, m.currency),
        decode=lambda data: Money(*data),
    )


def test_registered_type_round_trips_with_a_rich_payload() -> None:
    register_money()
    value = {"price": Money(Decimal("9.90"), "EUR"), "keys": {Money(Decimal(1), "USD"): 1}}
    tree = to_wire(value)
    assert tree["price"] == {
        TAG_KEY: "test.money",
        VALUE_KEY: {TAG_KEY: "tuple", VALUE_KEY: [{TAG_KEY: "decimal", VALUE_KEY: "9.90"}, "EUR"]},
    }
    back = loads(dumps(value))
    assert back == value
    assert str(back["price"].amount) == "9.90"


def test_subclasses_match_through_the_mro_nearest_first() -> None:
    register_type(Base, tag="test.base", encode=lambda b: b.n, decode=Base)
    assert from_wire(to_wire(GrandChild(1))) == Base(1)  # via Base: comes back as Base
    register_type(Child, tag="test.child", encode=lambda c: c.n, decode=Child)
    assert to_wire(GrandChild(2))[TAG_KEY] == "test.child"
    assert to_wire(Base(3))[TAG_KEY] == "test.base"
    register_type(GrandChild, tag="test.grandchild", encode=lambda g: g.n, decode=GrandChild)
    assert from_wire(to_wire(GrandChild(4))) == GrandChild(4)


def test_registering_again_replaces_the_codec() -> None:
    register_type(Base, tag="test.base", encode=lambda b: b.n, decode=Base)
    register_type(Base, tag="test.base2", encode=lambda b: [b.n], decode=lambda d: Base(d[0]))
    assert to_wire(Base(1)) == {TAG_KEY: "test.base2", VALUE_KEY: [1]}
    with pytest.raises(DeserializationError, match="unknown tag 'test.base'"):
        from_wire({TAG_KEY: "test.base", VALUE_KEY: 1})


@pytest.mark.parametrize(
    ("cls", "tag", "error", "fragment"),
    [
        (Base, "tuple", ValueError, "reserved"),
        (Base, "", TypeError, "non-empty str"),
        (dict, "test.dict", ValueError, "serialized natively"),
        (date, "test.date", ValueError, "serialized natively"),
        (object(), "test.obj", TypeError, "needs a class"),
    ],
)
def test_register_type_rejects_bad_registrations(
    cls: Any, tag: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        register_type(cls, tag=tag, encode=str, decode=str)


def test_a_tag_belongs_to_one_class() -> None:
    register_type(Base, tag="test.shared", encode=lambda b: b.n, decode=Base)
    with pytest.raises(ValueError, match="already registered"):
        register_type(Money, tag="test.shared", encode=str, decode=str)


def test_isolated_registry_forgets_registrations() -> None:
    with isolated_registry():
        register_money()
        assert to_wire(Money(Decimal(1), "EUR"))[TAG_KEY] == "test.money"
    with pytest.raises(SerializationError):
        to_wire(Money(Decimal(1), "EUR"))


# -- async hooks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: int
    loaded: bool = False


@dataclass(frozen=True)
class Team:
    name: str
    lead: User
    loaded: bool = False


class UserHook:
    """Fetches users "from the database": decoded users carry ``loaded=True``."""

    tag = "test.user"

    def __init__(self) -> None:
        self.decoded: list[Any] = []

    def matches(self, obj: object) -> bool:
        return isinstance(obj, User)

    def encode(self, obj: User) -> Any:
        return {"id": obj.id}

    async def decode(self, data: Any) -> User:
        self.decoded.append(data)
        await asyncio.sleep(0)
        return User(data["id"], loaded=True)


class TeamHook:
    """Its payload holds a user: the user must be fetched before the team."""

    tag = "test.team"

    def matches(self, obj: object) -> bool:
        return isinstance(obj, Team)

    def encode(self, obj: Team) -> Any:
        return [obj.name, obj.lead]

    async def decode(self, data: Any) -> Team:
        name, lead = data
        assert isinstance(lead, User)
        assert lead.loaded
        return Team(name, lead, loaded=True)


def test_user_hook_satisfies_the_protocol() -> None:
    hook: SerializerHook = UserHook()
    assert isinstance(hook, SerializerHook)


async def test_hook_values_are_decoded_wherever_they_sit() -> None:
    register_hook(UserHook())
    value = {
        "user": User(1),
        "list": [User(2)],
        "tuple": (User(3), 0),
        "set": {User(4)},
        "frozen": frozenset({User(5)}),
        "keyed": {User(6): "six"},
        "escaped": {TAG_KEY: User(7)},
    }
    tree, uses_async = to_wire_with_info(value, path="kwargs")
    assert uses_async is True
    assert tree["user"] == {TAG_KEY: "test.user", VALUE_KEY: {"id": 1}}

    back = await from_wire_async(loads(dumps(tree)))
    assert back == {
        "user": User(1, loaded=True),
        "list": [User(2, loaded=True)],
        "tuple": (User(3, loaded=True), 0),
        "set": {User(4, loaded=True)},
        "frozen": frozenset({User(5, loaded=True)}),
        "keyed": {User(6, loaded=True): "six"},
        "escaped": {TAG_KEY: User(7, loaded=True)},
    }
    assert type(back["tuple"]) is tuple


def test_uses_async_is_false_without_hook_values() -> None:
    register_hook(UserHook())
    register_money()
    assert to_wire_with_info({"a": 1})[1] is False
    assert to_wire_with_info({"m": Money(Decimal(1), "EUR"), "d": date(2020, 1, 1)})[1] is False


def test_sync_from_wire_refuses_hook_nodes() -> None:
    register_hook(UserHook())
    with pytest.raises(DeserializationError, match="from_wire_async") as caught:
        from_wire(to_wire([User(1)]))
    assert caught.value.tag == "test.user"


async def test_hook_decodes_run_concurrently() -> None:
    arrived = 0
    both_arrived = asyncio.Event()

    class RendezvousHook(UserHook):
        tag = "test.rendezvous"

        async def decode(self, data: Any) -> User:
            # Each decode waits until the other one has started: run one after the other,
            # the first would wait forever (and the timeout below would fail the test).
            nonlocal arrived
            arrived += 1
            if arrived == 2:
                both_arrived.set()
            await both_arrived.wait()
            return User(data["id"], loaded=True)

    register_hook(RendezvousHook())
    tree = to_wire({"a": User(1), "b": [User(2)]})
    async with asyncio.timeout(5):
        back = await from_wire_async(tree)
    assert back == {"a": User(1, loaded=True), "b": [User(2, loaded=True)]}


async def test_nested_hook_payloads_resolve_inner_first() -> None:
    register_hook(UserHook())
    register_hook(TeamHook())
    tree, uses_async = to_wire_with_info((Team("core", User(9)), User(1)))
    assert uses_async is True
    back = await from_wire_async(tree)
    assert back == (Team("core", User(9, loaded=True), loaded=True), User(1, loaded=True))


async def test_a_failing_hook_decode_propagates_and_cancels_the_others() -> None:
    cancelled = asyncio.Event()

    class FailingHook(UserHook):
        tag = "test.failing"

        async def decode(self, data: Any) -> User:
            if data["id"] == 1:
                raise LookupError("user 1 is gone")
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return User(data["id"])

    register_hook(FailingHook())
    tree = to_wire([User(1), User(2)])
    with pytest.raises(LookupError, match="user 1 is gone"):
        await from_wire_async(tree)
    assert cancelled.is_set()


async def test_bad_hook_payload_is_located() -> None:
    register_hook(UserHook())
    tree = {"a": [{TAG_KEY: "test.user", VALUE_KEY: {TAG_KEY: "uuid", VALUE_KEY: "bad"}}]}
    with pytest.raises(DeserializationError) as caught:
        await from_wire_async(tree)
    assert caught.value.path == "payload -> ['a'][0]<test.user payload>"
    assert caught.value.tag == "uuid"


def test_hook_errors_while_encoding_name_the_hook() -> None:
    class BrokenMatch(UserHook):
        tag = "test.broken"

        def matches(self, obj: object) -> bool:
            raise RuntimeError("no")

    register_hook(BrokenMatch())
    with pytest.raises(SerializationError, match=r"hook 'test.broken' failed in matches\(\)"):
        to_wire({"u": User(1)})


def test_register_hook_validation_and_idempotence() -> None:
    hook = UserHook()
    register_hook(hook)
    register_hook(hook)
    register_hook(UserHook())  # same class and tag: a plugin registering itself twice
    with pytest.raises(ValueError, match="already registered"):
        register_hook(TeamHook.__new__(type("Other", (TeamHook,), {"tag": "test.user"})))
    with pytest.raises(TypeError, match="no callable decode"):
        register_hook(type("NoDecode", (), {"tag": "x.y", "matches": bool, "encode": str})())
    with pytest.raises(ValueError, match="reserved"):
        register_hook(type("Reserved", (UserHook,), {"tag": "enum"})())
    register_money()
    with pytest.raises(ValueError, match="already registered"):
        register_hook(type("Clash", (UserHook,), {"tag": "test.money"})())


# -- entry points ----------------------------------------------------------------------------


@dataclass
class FakeDistribution:
    name: str
    version: str


class FakeEntryPoint:
    def __init__(self, name: str, target: Any, dist: FakeDistribution | None = None) -> None:
        self.name = name
        self.value = f"fake_plugins:{name}"
        self.group = serializer_plugins.ENTRY_POINT_GROUP
        self.dist = dist or FakeDistribution("asynctasq-orm-fake", "1.2.3")
        self._target = target

    def load(self) -> Any:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


class Installed:
    """Entry points to 'install', and how often the metadata was read."""

    def __init__(self) -> None:
        self.entry_points: list[FakeEntryPoint] = []
        self.reads = 0

    def add(self, name: str, target: Any, dist: FakeDistribution | None = None) -> None:
        self.entry_points.append(FakeEntryPoint(name, target, dist))

    def read(self) -> list[FakeEntryPoint]:
        self.reads += 1
        return list(self.entry_points)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Installed:
    installed = Installed()
    monkeypatch.setattr(serializer_plugins, "_entry_points", installed.read)
    return installed


def test_discovery_is_lazy_and_happens_once(installed: Installed) -> None:
    installed.add("users", UserHook())
    assert to_wire({"plain": [1, 2]}) == {"plain": [1, 2]}
    assert to_wire((date(2020, 1, 1),))
    assert installed.reads == 0  # nothing unknown met yet

    tree, uses_async = to_wire_with_info([User(1)])
    assert tree == [{TAG_KEY: "test.user", VALUE_KEY: {"id": 1}}]
    assert uses_async is True  # the hook was discovered during this very call
    assert installed.reads == 1
    with pytest.raises(SerializationError):
        to_wire(object())
    assert installed.reads == 1


@pytest.mark.parametrize(
    "target", [UserHook(), UserHook, lambda: UserHook()], ids=["instance", "class", "factory"]
)
async def test_entry_point_may_name_instance_class_or_factory(
    installed: Installed, target: Any
) -> None:
    installed.add("users", target)
    tree = {"u": {TAG_KEY: "test.user", VALUE_KEY: {"id": 3}}}
    assert await from_wire_async(tree) == {"u": User(3, loaded=True)}
    assert installed.reads == 1  # met an unknown tag first: discovered before decoding


def test_sync_decode_discovers_before_reporting_unknown_tag(
    installed: Installed,
) -> None:
    installed.add("users", UserHook())
    with pytest.raises(DeserializationError, match="from_wire_async"):
        from_wire([{TAG_KEY: "test.user", VALUE_KEY: {"id": 1}}])
    assert installed.reads == 1


def test_broken_plugin_is_named_with_its_distribution(
    installed: Installed, caplog: pytest.LogCaptureFixture
) -> None:
    installed.add("users", UserHook())
    installed.add(
        "teams",
        ImportError("No module named 'sqlalchemy'"),
        FakeDistribution("asynctasq-orm-sqlalchemy", "0.1.0"),
    )
    # A working plugin still works next to a broken one.
    assert to_wire(User(1))[TAG_KEY] == "test.user"
    assert "serializer hook plugin 'teams = fake_plugins:teams'" in caplog.text

    expected = (
        "note: serializer hook plugin 'teams = fake_plugins:teams' from distribution "
        "'asynctasq-orm-sqlalchemy 0.1.0' failed to load: ImportError: No module named "
        "'sqlalchemy'"
    )
    with pytest.raises(SerializationError) as encode_error:
        to_wire({"team": Team("a", User(1))})
    assert expected in str(encode_error.value)
    with pytest.raises(DeserializationError) as decode_error:
        from_wire({TAG_KEY: "test.team", VALUE_KEY: None})
    assert expected in str(decode_error.value)

    assert discover_hooks() == (
        HookPlugin("users", "fake_plugins:users", "asynctasq-orm-fake 1.2.3", "test.user", None),
        HookPlugin(
            "teams",
            "fake_plugins:teams",
            "asynctasq-orm-sqlalchemy 0.1.0",
            None,
            "ImportError: No module named 'sqlalchemy'",
        ),
    )


def test_entry_point_that_is_not_a_hook_is_reported(installed: Installed) -> None:
    installed.add("junk", 42)
    installed.add("clash", type("Clash", (UserHook,), {"tag": "tuple"}))
    plugins = discover_hooks()
    assert [plugin.error is not None for plugin in plugins] == [True, True]
    assert plugins[0].error is not None
    assert "neither a serializer hook" in plugins[0].error
    assert plugins[1].error is not None
    assert "reserved" in plugins[1].error


def test_unreadable_metadata_does_not_break_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[Any]:
        raise RuntimeError("corrupt METADATA")

    monkeypatch.setattr(serializer_plugins, "_entry_points", broken)
    assert discover_hooks() == ()
    with pytest.raises(SerializationError, match="object of type 'User'"):
        to_wire(User(1))
