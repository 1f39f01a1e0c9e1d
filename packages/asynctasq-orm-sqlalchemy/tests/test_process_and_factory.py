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
