"""Several models in one task are fetched at once; a model argument is a tiny payload."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
import sa_testapp
from sa_testapp import Order, User, Wide
from sa_testsupport import Backend, run_worker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from asynctasq.core.dispatch import prepare
from asynctasq.testing import MemoryDriver


class SlowSession(AsyncSession):
    """Counts fetches in flight and notes when each ran; each takes at least 0.3 s."""

    in_flight = 0
    most = 0
    spans: ClassVar[list[tuple[float, float]]] = []

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        SlowSession.in_flight += 1
        SlowSession.most = max(SlowSession.most, SlowSession.in_flight)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await asyncio.sleep(0.3)
            return await super().get(*args, **kwargs)
        finally:
            SlowSession.in_flight -= 1
            SlowSession.spans.append((began, loop.time()))


@pytest.mark.parametrize("backend", ["pg-asyncpg", "mysql-aiomysql"], indirect=True)
async def test_models_of_one_task_are_fetched_concurrently(
    backend: Backend, admin: Any, memory: MemoryDriver
) -> None:
    engine = create_async_engine(backend.url)
    sa_testapp.Base._asynctasq_session_factory = async_sessionmaker(  # type: ignore[attr-defined]
        engine, class_=SlowSession, expire_on_commit=False
    )
    SlowSession.most = 0
    SlowSession.spans = []
    try:
        async with admin() as session:
            user, order = User(id=1, email="a@b.c", name="Al"), Order(id=2, user_id=1, total=3.0)
            session.add_all([user, order])
            await session.commit()
            await sa_testapp.process_order(order, user).dispatch()
        worker = await run_worker(memory)
    finally:
        await engine.dispose()
    assert worker.stats.succeeded == 1
    assert sa_testapp.seen == [("order", 2, 3.0, "Al")]
    assert SlowSession.most == 2
    # Side by side, not one after the other: each fetch began before the other's 0.3 s were
    # over (read from when they ran, so a loaded machine cannot fail it, nor fake it).
    (first_began, first_ended), (second_began, _) = sorted(SlowSession.spans)
    assert second_began < first_began + 0.3 <= first_ended


def test_wide_model_payload_is_a_small_fraction_of_its_columns() -> None:
    columns = {f"col_{i:02d}": f"value {i} " + "x" * 190 for i in range(30)}
    row = Wide(id=123456, **columns)
    as_model = prepare(sa_testapp.wide_task(row)).payload
    as_dict = prepare(sa_testapp.wide_task({"id": 123456, **columns})).payload
    reduction = 1 - len(as_model) / len(as_dict)
    print(f"envelope: {len(as_model)} bytes as a model, {len(as_dict)} bytes as a dict")
    assert b"sa_testapp:Wide" in as_model and b"xxxx" not in as_model
    assert reduction > 0.95, (len(as_model), len(as_dict))


@pytest.mark.parametrize("backend", ["pg-asyncpg"], indirect=True)
async def test_wide_model_round_trip(
    backend: Backend, admin: Any, factory: Any, memory: MemoryDriver
) -> None:
    async with admin() as session:
        row = Wide(id=5, **{f"col_{i:02d}": "v" * 100 for i in range(30)})
        session.add(row)
        await session.commit()
        await sa_testapp.wide_task(row).dispatch()
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 1
    assert sa_testapp.seen == [("wide", 5)]
