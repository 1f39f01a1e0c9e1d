"""The class-based guide's form: a session in a ContextVar set on the model classes."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import Any

import pytest
import sa_testapp
from sa_testapp import User
from sa_testsupport import Backend, run_worker
from sqlalchemy import create_engine, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from asynctasq.testing import MemoryDriver


@pytest.fixture
def session_var() -> Iterator[contextvars.ContextVar[Any]]:
    var: contextvars.ContextVar[Any] = contextvars.ContextVar("session")
    User._asynctasq_session_var = var  # type: ignore[attr-defined]
    yield var
    del User._asynctasq_session_var  # type: ignore[attr-defined]


async def test_session_in_the_variable_is_used_and_refreshed(
    backend: Backend, admin: Any, memory: MemoryDriver, session_var: contextvars.ContextVar[Any]
) -> None:
    async with admin() as setup:
        setup.add(User(id=1, email="a@example.com", name="Old"))
        await setup.commit()
    if backend.is_async:
        engine: Any = create_async_engine(backend.url)
        session: Any = AsyncSession(engine)
        stale = await session.get(User, 1)
    else:
        engine = create_engine(backend.url)
        session = Session(engine)
        stale = session.get(User, 1)
    try:
        await sa_testapp.greet(stale).dispatch()
        await sa_testapp.SendWelcomeEmail(user=stale).dispatch()
        async with admin() as other:  # another connection changes the row
            await other.execute(update(User).where(User.id == 1).values(name="New"))
            await other.commit()
        if backend.is_async:
            await session.commit()  # end the snapshot (REPEATABLE READ on MariaDB)
        else:
            session.commit()
        session_var.set(session)
        worker = await run_worker(memory)
        assert worker.stats.succeeded == 2
        assert sorted(sa_testapp.seen) == [("greet", 1, "New"), ("welcome", 1, "a@example.com")]
        assert stale.name == "New" and stale in session  # loaded into the session, refreshed
    finally:
        if backend.is_async:
            await session.close()
            await engine.dispose()
        else:
            session.close()
            engine.dispose()


@pytest.mark.parametrize("backend", ["pg-asyncpg"], indirect=True)
async def test_variable_without_value_falls_back_to_the_factory(
    backend: Backend,
    admin: Any,
    factory: Any,
    memory: MemoryDriver,
    session_var: contextvars.ContextVar[Any],
) -> None:
    async with admin() as setup:
        user = User(id=2, email="b@example.com", name="Bo")
        setup.add(user)
        await setup.commit()
        await sa_testapp.greet(user).dispatch()
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 1 and sa_testapp.seen == [("greet", 2, "Bo")]


@pytest.mark.parametrize("backend", ["pg-asyncpg"], indirect=True)
async def test_variable_without_value_and_no_factory_says_so(
    backend: Backend, admin: Any, memory: MemoryDriver, session_var: contextvars.ContextVar[Any]
) -> None:
    async with admin() as setup:
        user = User(id=3, email="c@example.com", name="Cy")
        setup.add(user)
        await setup.commit()
        await sa_testapp.greet(user).dispatch()
    worker = await run_worker(memory)
    assert worker.stats.dead_lettered == 1
    [dead] = memory.dead_letters()
    message = dead.failure.message
    assert "_asynctasq_session_var holds no value in the worker" in message
    assert "asynctasq worker --import" in message and "_asynctasq_session_factory" in message
