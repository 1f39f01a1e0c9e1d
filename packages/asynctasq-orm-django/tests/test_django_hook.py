"""Django models travel as class and primary key and are fetched fresh in the worker."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import orjson
import pytest
from dj_testapp import tasks
from dj_testapp.models import Membership, Note, Product, User, Wide

from asynctasq.core.dispatch import prepare
from asynctasq.serializer import (
    DeserializationError,
    SerializationError,
    from_wire_async,
    set_import_guard,
)
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker
from asynctasq_orm_django import ModelNotFoundError, set_default_on_missing

pytestmark = pytest.mark.usefixtures("db")


async def run_worker(memory: MemoryDriver) -> Worker:
    worker = Worker(memory, queues=["dj"], burst=True, install_signal_handlers=False)
    await worker.run()
    return worker


def payloads(memory: MemoryDriver) -> list[dict[str, Any]]:
    return [orjson.loads(r.payload) for r in memory.messages()]


async def test_function_and_class_tasks_get_fresh_rows(memory: MemoryDriver) -> None:
    user = await User.objects.acreate(email="a@example.com", name="Before")
    product = await Product.objects.acreate(name="Lamp", price=Decimal("10.00"))
    await tasks.greet(user).dispatch()
    await tasks.greet_sync(user=user).dispatch()
    await tasks.SendWelcomeEmail(user=user).dispatch()
    await tasks.update_price(product=product, user=user, new_price=99.99).dispatch()
    assert payloads(memory)[0]["args"] == [
        {"__aq__": "django", "v": ["dj_testapp.models:User", user.pk]}
    ]
    await User.objects.filter(pk=user.pk).aupdate(name="After", email="after@example.com")
    await Product.objects.filter(pk=product.pk).aupdate(price=Decimal("12.50"))
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 4
    assert sorted(map(str, tasks.seen)) == sorted(
        map(
            str,
            [
                ("greet", user.pk, "After"),
                ("greet_sync", user.pk, "After"),
                ("welcome", user.pk, "after@example.com"),
                ("price", "Lamp", Decimal("12.50"), "After", 99.99),
            ],
        )
    )


async def test_composite_primary_key(memory: MemoryDriver) -> None:
    membership = await Membership.objects.acreate(team="core", user_id=3, role="dev")
    await tasks.membership_role(membership).dispatch()
    assert payloads(memory)[0]["args"][0]["v"] == [
        "dj_testapp.models:Membership",
        {"__aq__": "tuple", "v": ["core", 3]},
    ]
    await Membership.objects.filter(pk=("core", 3)).aupdate(role="lead")
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 1
    assert tasks.seen == [("membership", "core", 3, "lead")]


async def test_deleted_row_fails_without_retries(memory: MemoryDriver) -> None:
    user = await User.objects.acreate(email="g@example.com", name="Gone")
    await tasks.greet(user).dispatch()
    pk = user.pk
    await user.adelete()
    worker = await run_worker(memory)
    assert (worker.stats.succeeded, worker.stats.retried, worker.stats.dead_lettered) == (0, 0, 1)
    [dead] = memory.dead_letters()
    assert dead.failure.exception_type == "asynctasq.errors.ModelNotFoundError"
    assert f"dj_testapp.models:User with primary key {pk} does not exist" in dead.failure.message
    assert issubclass(ModelNotFoundError, LookupError)


async def test_missing_policies(memory: MemoryDriver) -> None:
    note = await Note.objects.acreate(text="soon gone")
    user = await User.objects.acreate(email="h@example.com", name="Gone")
    await tasks.maybe_note(note).dispatch()
    await tasks.maybe_user(user).dispatch()
    await note.adelete()
    await user.adelete()
    previous = set_default_on_missing("none")
    try:
        worker = await run_worker(memory)
    finally:
        set_default_on_missing(previous)
    assert worker.stats.succeeded == 2
    assert sorted(map(str, tasks.seen)) == ["('maybe', None)", "('note', None)"]


async def test_unsaved_instance_cannot_be_dispatched() -> None:
    with pytest.raises(SerializationError, match="no primary key yet"):
        await tasks.greet(User(email="n@example.com", name="New")).dispatch()


def test_wide_model_payload_is_a_small_fraction_of_its_columns() -> None:
    columns = {f"col_{i:02d}": f"value {i} " + "x" * 190 for i in range(30)}
    as_model = prepare(tasks.anything(Wide(id=123456, **columns))).payload
    as_dict = prepare(tasks.anything({"id": 123456, **columns})).payload
    assert 1 - len(as_model) / len(as_dict) > 0.95, (len(as_model), len(as_dict))


async def test_import_guard_is_asked_first() -> None:
    asked: list[str] = []

    def guard(module: str) -> None:
        asked.append(module)
        raise PermissionError("not here")

    set_import_guard(guard)
    with pytest.raises(DeserializationError, match="refused by the import guard"):
        await from_wire_async({"__aq__": "django", "v": ["elsewhere.models:User", 1]})
    assert asked == ["elsewhere.models"] and "elsewhere" not in sys.modules
    set_import_guard(None)
    with pytest.raises(DeserializationError, match="not a django model class"):
        await from_wire_async({"__aq__": "django", "v": ["json:JSONDecoder", 1]})


async def test_other_database_alias_travels(memory: MemoryDriver) -> None:
    user = await User.objects.acreate(email="o@example.com", name="Other")
    user._state.db = "replica"
    wire = prepare(tasks.greet(user)).payload
    assert orjson.loads(wire)["args"][0]["v"] == ["dj_testapp.models:User", user.pk, "replica"]
