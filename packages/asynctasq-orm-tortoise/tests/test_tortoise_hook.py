"""Tortoise models travel as class and primary key and are fetched fresh in the worker."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import orjson
import pytest
from tortoise.context import TortoiseContext
from tt_testapp import tasks
from tt_testapp.models import Note, Post, User, Wide

from asynctasq.core.dispatch import prepare
from asynctasq.serializer import DeserializationError, from_wire_async, set_import_guard
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker
from asynctasq_orm_tortoise import set_default_on_missing


async def run_worker(memory: MemoryDriver) -> Worker:
    """A worker in a context of its own: no Tortoise state of the dispatching side leaks in."""
    worker = Worker(memory, queues=["tt"], burst=True, install_signal_handlers=False)
    await asyncio.create_task(worker.run(), context=contextvars.Context())
    return worker


def payloads(memory: MemoryDriver) -> list[dict[str, Any]]:
    return [orjson.loads(r.payload) for r in memory.messages()]


async def dispatch_post(ctx: TortoiseContext) -> tuple[User, Post]:
    user = await User.create(id=1, email="a@example.com", name="Before")
    post = await Post.create(id=10, title="Hello", author=user)
    await tasks.notify_new_post(post=post, author=user).dispatch()
    await tasks.NotifyNewPost(post=post, author=user).dispatch()
    await User.filter(id=1).update(name="After")
    return user, post


@pytest.mark.usefixtures("lazy_worker_init")
async def test_worker_initialises_tortoise_lazily_and_fetches_fresh(
    dispatcher: TortoiseContext, memory: MemoryDriver
) -> None:
    await dispatch_post(dispatcher)
    assert payloads(memory)[0]["kwargs"]["post"] == {
        "__aq__": "tortoise",
        "v": ["tt_testapp.models:Post", 10],
    }
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 2, memory.dead_letters()
    assert sorted(tasks.seen) == [
        ("class", "Hello", "After", "a@example.com"),
        ("post", "Hello", "After"),
    ]


async def test_without_initialisation_the_error_says_what_to_do(
    dispatcher: TortoiseContext, memory: MemoryDriver
) -> None:
    await dispatch_post(dispatcher)
    worker = await run_worker(memory)
    assert worker.stats.dead_lettered == 2
    dead = next(iter(memory.dead_letters()))
    assert dead.failure.exception_type.endswith("TortoiseNotInitializedError")
    assert "init_on_first_use" in dead.failure.message


@pytest.mark.usefixtures("lazy_worker_init")
async def test_deleted_rows_and_policies(dispatcher: TortoiseContext, memory: MemoryDriver) -> None:
    _, post = await dispatch_post(dispatcher)
    note = await Note.create(id=1, text="soon gone")
    await tasks.maybe_note(note).dispatch()
    await post.delete()
    await note.delete()
    worker = await run_worker(memory)
    assert (worker.stats.succeeded, worker.stats.retried, worker.stats.dead_lettered) == (1, 0, 2)
    assert tasks.seen == [("note", None)]
    messages = {d.failure.message for d in memory.dead_letters()}
    assert messages == {
        "tt_testapp.models:Post with primary key 10 does not exist (deleted after the task was "
        "dispatched?): the task was not run. Set _asynctasq_on_missing = 'none' on the model "
        "to pass None instead"
    }


@pytest.mark.usefixtures("lazy_worker_init")
async def test_package_default_policy(dispatcher: TortoiseContext, memory: MemoryDriver) -> None:
    user = await User.create(id=2, email="b@example.com", name="Gone")
    await tasks.maybe_user(user).dispatch()
    await user.delete()
    previous = set_default_on_missing("none")
    try:
        worker = await run_worker(memory)
    finally:
        set_default_on_missing(previous)
    assert worker.stats.succeeded == 1 and tasks.seen == [("maybe", None)]


async def test_unsaved_instances_and_wide_payloads() -> None:
    from asynctasq.serializer import SerializationError

    with pytest.raises(SerializationError, match="no primary key yet"):
        prepare(tasks.anything(Note(text="new")))
    columns = {f"col_{i:02d}": f"value {i} " + "x" * 190 for i in range(30)}
    wide = Wide(id=123456)
    wide._saved_in_db = True
    as_model = prepare(tasks.anything(wide)).payload
    as_dict = prepare(tasks.anything({"id": 123456, **columns})).payload
    assert 1 - len(as_model) / len(as_dict) > 0.95, (len(as_model), len(as_dict))


async def test_import_guard_is_asked_first() -> None:
    asked: list[str] = []

    def guard(module: str) -> None:
        asked.append(module)
        raise PermissionError("not here")

    set_import_guard(guard)
    with pytest.raises(DeserializationError, match="refused by the import guard"):
        await from_wire_async({"__aq__": "tortoise", "v": ["elsewhere.models:User", 1]})
    assert asked == ["elsewhere.models"] and "elsewhere" not in sys.modules
    set_import_guard(None)
    with pytest.raises(DeserializationError, match="not a tortoise model class"):
        await from_wire_async({"__aq__": "tortoise", "v": ["json:JSONDecoder", 1]})
