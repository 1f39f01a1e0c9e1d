"""Rows deleted before the task runs, missing configuration, unflushed instances."""

from __future__ import annotations

from typing import Any

import pytest
import sa_testapp
from sa_testapp import Note, User
from sa_testsupport import Backend, run_worker

from asynctasq.serializer import SerializationError
from asynctasq.testing import MemoryDriver
from asynctasq_orm_sqlalchemy import ModelNotFoundError, set_default_on_missing

one_backend = pytest.mark.parametrize("backend", ["pg-asyncpg", "mysql-pymysql"], indirect=True)


async def _dispatch_then_delete(admin: Any, model: Any, **columns: Any) -> None:
    async with admin() as session:
        row = model(**columns)
        session.add(row)
        await session.commit()
        task = sa_testapp.maybe_greet(row) if model is User else sa_testapp.maybe_note(row)
        await task.dispatch()
        await session.delete(row)
        await session.commit()


@one_backend
async def test_deleted_row_fails_the_task_without_retries(
    backend: Backend, admin: Any, factory: Any, memory: MemoryDriver
) -> None:
    await _dispatch_then_delete(admin, User, id=7, email="g@example.com", name="Gone")
    worker = await run_worker(memory)
    assert sa_testapp.seen == []
    assert (worker.stats.succeeded, worker.stats.retried, worker.stats.dead_lettered) == (0, 0, 1)
    [dead] = memory.dead_letters()
    assert dead.failure.exception_type == "asynctasq.errors.ModelNotFoundError"
    assert "sa_testapp:User with primary key 7 does not exist" in dead.failure.message


@one_backend
async def test_policy_none_on_the_model_passes_none(
    backend: Backend, admin: Any, factory: Any, memory: MemoryDriver
) -> None:
    await _dispatch_then_delete(admin, Note, id=1, text="gone soon")
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 1
    assert sa_testapp.seen == [("note", None)]


@one_backend
async def test_package_default_policy(
    backend: Backend, admin: Any, factory: Any, memory: MemoryDriver
) -> None:
    await _dispatch_then_delete(admin, User, id=8, email="h@example.com", name="Gone")
    previous = set_default_on_missing("none")
    try:
        worker = await run_worker(memory)
    finally:
        set_default_on_missing(previous)
    assert worker.stats.succeeded == 1
    assert sa_testapp.seen == [("maybe", None)]


def test_unknown_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="'error', 'none'"):
        set_default_on_missing("skip")  # type: ignore[arg-type]


def test_model_not_found_error_pickles() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(ModelNotFoundError("app:Line", (1, "a"))))
    assert (error.model, error.pk) == ("app:Line", (1, "a"))
    assert "app:Line with primary key (1, 'a')" in str(error)


@one_backend
async def test_no_session_configured_is_dead_lettered_with_the_fix(
    backend: Backend, admin: Any, memory: MemoryDriver
) -> None:
    async with admin() as session:
        user = User(id=9, email="i@example.com", name="Ida")
        session.add(user)
        await session.commit()
        await sa_testapp.greet(user).dispatch()
    worker = await run_worker(memory)
    assert worker.stats.dead_lettered == 1
    [dead] = memory.dead_letters()
    assert dead.failure.exception_type.endswith("SessionNotConfiguredError")
    assert "Base._asynctasq_session_factory" in dead.failure.message


async def test_an_unflushed_instance_cannot_be_dispatched() -> None:
    with pytest.raises(SerializationError, match="no primary key yet"):
        await sa_testapp.greet(User(email="j@example.com", name="New")).dispatch()
