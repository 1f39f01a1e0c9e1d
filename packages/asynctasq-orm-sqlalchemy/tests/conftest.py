"""Fixtures: real PostgreSQL and MariaDB/MySQL servers, each through an async and a sync driver.

Server URLs come from ``ASYNCTASQ_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and ``ASYNCTASQ_TEST_MYSQL_DSN`` (default
``mysql://root@127.0.0.1:3306/test``). An unreachable server skips its tests, or fails them
when ``CI`` is set. Every run creates its own tables (random suffix) and drops them after.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

import asynctasq.config as config_module
from asynctasq.config import set_global_config
from asynctasq.serializer import get_import_guard, set_import_guard
from asynctasq.testing import MemoryDriver

sys.path.insert(0, str(Path(__file__).parent))  # sa_testapp, importable by children too
# Tables of this pytest process's own: xdist workers would otherwise inherit the
# controller's suffix and share (and drop) each other's tables. Children started by the
# tests inherit this value, so they name the same tables.
os.environ["ASYNCTASQ_SA_TEST_SUFFIX"] = uuid.uuid4().hex[:8]

import sa_testapp
from sa_testsupport import BACKENDS, Backend

_reachable: dict[str, str | None] = {}


def _unreachable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The memory driver with a namespace of its own; the import guard restored after."""
    for name in list(os.environ):
        if name.startswith("ASYNCTASQ_") and name != "ASYNCTASQ_SA_TEST_SUFFIX":
            monkeypatch.delenv(name)
    saved, guard = config_module.configured(), get_import_guard()
    set_import_guard(None)  # from a known state, whatever ran before in this process
    namespace = f"sa-{uuid.uuid4().hex[:8]}"
    config_module.reset_config()
    set_global_config(driver="memory", memory={"namespace": namespace})
    sa_testapp.seen.clear()
    try:
        yield namespace
    finally:  # a test that set the import guard leaves none behind, whatever happened
        config_module.use_config(saved)
        set_import_guard(guard)
        sa_testapp.Base._asynctasq_session_factory = None  # type: ignore[attr-defined]


@pytest.fixture
def memory(_isolated_config: str) -> MemoryDriver:
    """The in-memory driver the tasks are dispatched to."""
    return MemoryDriver(namespace=_isolated_config)


async def _create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(sa_testapp.Base.metadata.create_all)


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each server and driver, with the test tables created (emptied after each test)."""
    chosen = BACKENDS[request.param]
    server = chosen.async_url
    if server not in _reachable:
        engine = create_async_engine(server)
        try:
            await _create_tables(engine)
            _reachable[server] = None
        except Exception as exc:
            _reachable[server] = f"{chosen.name}: server not reachable: {exc}"
        finally:
            await engine.dispose()
    reason = _reachable[server]
    if reason is not None:
        _unreachable(reason)
    yield chosen
    engine = create_async_engine(server)
    try:
        async with engine.begin() as conn:
            for table in reversed(sa_testapp.Base.metadata.sorted_tables):
                await conn.execute(table.delete())
    finally:
        await engine.dispose()


@pytest.fixture
async def admin(backend: Backend) -> AsyncIterator[async_sessionmaker[Any]]:
    """An async session factory on the backend's server, for arranging and checking rows."""
    engine = create_async_engine(backend.async_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def factory(backend: Backend) -> AsyncIterator[Any]:
    """The session factory under test, set on the declarative base."""
    if backend.is_async:
        engine = create_async_engine(backend.url)
        made: Any = async_sessionmaker(engine, expire_on_commit=False)
    else:
        from sqlalchemy import create_engine

        sync_engine = create_engine(backend.url)
        made = sessionmaker(sync_engine, expire_on_commit=False)
    sa_testapp.Base._asynctasq_session_factory = made  # type: ignore[attr-defined]
    yield made
    if backend.is_async:
        await engine.dispose()
    else:
        sync_engine.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this run's tables on every server that had them."""
    import asyncio

    async def drop() -> None:
        for server, reason in _reachable.items():
            if reason is not None:
                continue
            engine = create_async_engine(server)
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(sa_testapp.Base.metadata.drop_all)
                    await conn.execute(text("SELECT 1"))
            finally:
                await engine.dispose()

    if _reachable:
        asyncio.run(drop())
