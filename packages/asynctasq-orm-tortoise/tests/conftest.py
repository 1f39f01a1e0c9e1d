"""Fixtures: the real PostgreSQL server through Tortoise, tables of this run's own.

The server URL comes from ``ASYNCTASQ_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Unreachable: tests skip, or fail under ``CI``.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tortoise import Tortoise, connections
from tortoise.context import TortoiseContext

import asynctasq.config as config_module
import asynctasq_orm_tortoise.setup as setup_module
from asynctasq.config import set_global_config
from asynctasq.serializer import get_import_guard, set_import_guard
from asynctasq.testing import MemoryDriver

sys.path.insert(0, str(Path(__file__).parent))
# Tables of this pytest process's own: xdist workers would otherwise inherit the
# controller's suffix and share (and drop) each other's tables. Children started by the
# tests inherit this value, so they name the same tables.
os.environ["ASYNCTASQ_TT_TEST_SUFFIX"] = uuid.uuid4().hex[:8]

from tt_testapp import models, tasks

PG_DSN = os.environ.get("ASYNCTASQ_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DB_URL = PG_DSN.replace("postgresql://", "postgres://", 1)
INIT: dict[str, Any] = {"db_url": DB_URL, "modules": {"models": ["tt_testapp.models"]}}
_reachable: list[str | None] = []


@pytest.fixture
async def dispatcher() -> AsyncIterator[TortoiseContext]:
    """Tortoise set up for the dispatching side (tables created once), closed after."""
    async with TortoiseContext() as ctx:
        try:
            await ctx.init(**INIT)
            if not _reachable:
                await ctx.generate_schemas(safe=True)
                _reachable.append(None)
            else:
                await connections.get("default").execute_query("SELECT 1")
        except Exception as exc:
            reason = f"PostgreSQL not reachable at {DB_URL}: {exc}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        yield ctx
        for model in models.MODELS:
            await model.all().delete()


@pytest.fixture
async def lazy_worker_init() -> AsyncIterator[None]:
    """The worker side: Tortoise initialised by the first fetch, closed after the test."""
    setup_module.init_on_first_use(**INIT)
    yield
    setup_module._settings = None
    # The lazily made context is the process-wide fallback: close it from a context where
    # no other Tortoise state is current.
    await asyncio.create_task(Tortoise.close_connections(), context=contextvars.Context())


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The memory driver with a namespace of its own; the import guard restored after."""
    for name in list(os.environ):
        if name.startswith("ASYNCTASQ_") and name != "ASYNCTASQ_TT_TEST_SUFFIX":
            monkeypatch.delenv(name)
    saved, guard = config_module.configured(), get_import_guard()
    set_import_guard(None)  # from a known state, whatever ran before in this process
    namespace = f"tt-{uuid.uuid4().hex[:8]}"
    config_module.reset_config()
    set_global_config(driver="memory", memory={"namespace": namespace})
    tasks.seen.clear()
    try:
        yield namespace
    finally:  # a test that set the import guard leaves none behind, whatever happened
        config_module.use_config(saved)
        set_import_guard(guard)


@pytest.fixture
def memory(_isolated_config: str) -> MemoryDriver:
    """The in-memory driver the tasks are dispatched to."""
    return MemoryDriver(namespace=_isolated_config)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this run's tables."""
    if not _reachable:
        return

    async def drop() -> None:
        async with TortoiseContext() as ctx:
            await ctx.init(**INIT)
            conn = connections.get("default")
            for model in models.MODELS:
                await conn.execute_script(f'DROP TABLE IF EXISTS "{model._meta.db_table}"')

    asyncio.run(drop())
