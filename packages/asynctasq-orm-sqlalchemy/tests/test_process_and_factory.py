"""worker_session_factory: NullPool engines, safe in process-pool children."""

from __future__ import annotations

from typing import Any

import pytest
import sa_testapp
from sa_testapp import User
from sa_testsupport import Backend, run_worker
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from asynctasq.testing import MemoryDriver
from asynctasq_orm_sqlalchemy import worker_session_factory


def test_async_and_sync_urls_give_matching_factories() -> None:
    made = worker_session_factory("postgresql+asyncpg://u@127.0.0.1/db", echo=False)
    assert isinstance(made, async_sessionmaker)
    assert isinstance(made.kw["bind"].pool, NullPool)
    sync = worker_session_factory("mysql+pymysql://u@127.0.0.1/db")
    assert isinstance(sync, sessionmaker) and isinstance(sync.kw["bind"].pool, NullPool)
    assert sync.kw["expire_on_commit"] is False


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pg-asyncpg"], indirect=True)
async def test_process_tasks_fetch_in_their_child(
    backend: Backend, admin: Any, memory: MemoryDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child imports sa_testapp afresh and builds its factory from this variable; each
    # child task runs on an event loop of its own, which a pooled engine would not survive.
    monkeypatch.setenv("SA_TESTAPP_WORKER_URL", backend.url)
    factory = worker_session_factory(backend.url)
    parent_sessions: list[object] = []

    def counting_factory() -> Any:
        parent_sessions.append(1)
        return factory()

    sa_testapp.Base._asynctasq_session_factory = counting_factory  # type: ignore[attr-defined]
    async with admin() as session:
        user = User(id=1, email="p@example.com", name="Pat")
        session.add(user)
        await session.commit()
        for _ in range(3):
            await sa_testapp.name_in_child(user).dispatch()
    worker = await run_worker(memory, process_pool_size=1, concurrency=1)
    assert (worker.stats.succeeded, worker.stats.dead_lettered) == (3, 0), memory.dead_letters()
    # The children fetched the user; the worker process did not fetch it a second time.
    assert parent_sessions == []


def _module_with(name: str, **values: object) -> type:
    """A model class defined in a fresh module `name` that also holds `values`."""
    import sys
    import types

    from sqlalchemy import Column, Integer
    from sqlalchemy.orm import DeclarativeBase

    module = types.ModuleType(name)
    sys.modules[name] = module

    class Base(DeclarativeBase):
        pass

    class Thing(Base):
        __tablename__ = "things"
        id = Column(Integer, primary_key=True)

    Thing.__module__ = name
    vars(module).update(values, Thing=Thing)
    return Thing


def test_the_one_session_factory_of_the_models_module_is_used_when_nothing_is_set() -> None:
    """The class-based guide sets its session variable only in main(): a worker finds the
    module's one sessionmaker (else its one engine) instead of failing."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from asynctasq_orm_sqlalchemy.errors import SessionNotConfiguredError
    from asynctasq_orm_sqlalchemy.sessions import session_source

    engine = create_async_engine("postgresql+asyncpg://u@127.0.0.1/none")
    maker = async_sessionmaker(engine)
    assert session_source(_module_with("sa_one_maker", engine=engine, maker=maker)) is maker
    made = session_source(_module_with("sa_engine_only", engine=engine))
    assert isinstance(made, async_sessionmaker) and made.kw["bind"] is engine
    two = _module_with("sa_two_makers", a=maker, b=async_sessionmaker(engine))
    with pytest.raises(SessionNotConfiguredError, match="_asynctasq_session_factory"):
        session_source(two)
    with pytest.raises(SessionNotConfiguredError):
        session_source(_module_with("sa_nothing"))
