"""Models travel as class and primary key and are fetched fresh in the worker."""

from __future__ import annotations

from typing import Any

import sa_testapp
from sa_testapp import Membership, Order, User
from sa_testsupport import Backend, payloads, run_worker

from asynctasq.testing import MemoryDriver


async def test_function_task_gets_fresh_row(
    backend: Backend, admin: Any, factory: Any, memory: MemoryDriver
) -> None:
    async with admin() as session:
        user = User(id=1, email="a@example.com", name="Before")
        session.add(user)
        await session.commit()
        await sa_testapp.greet(user).dispatch()
        user.name = "After"
        await session.commit()
    [payload] = payloads(memory)
    assert payload["args"] == [{"__aq__": "sqlalchemy", "v": ["sa_testapp:User", 1]}]
    assert payload["r"] == 1
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 1
    assert sa_testapp.seen == [("greet", 1, "After")]


async def test_sync_task_and_class_task(
    backend: Backend, admin: Any, factory: Any, memory: MemoryDriver
) -> None:
    async with admin() as session:
        user = User(id=2, email="b@example.com", name="Bea")
        session.add(user)
        await session.commit()
        await sa_testapp.greet_sync(user=user).dispatch()
        await sa_testapp.SendWelcomeEmail(user=user).dispatch()
        user.email = "bea@example.com"
        await session.commit()
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 2
    assert sorted(sa_testapp.seen) == [("greet_sync", 2, "Bea"), ("welcome", 2, "bea@example.com")]


async def test_several_models_and_composite_key(
    backend: Backend, admin: Any, factory: Any, memory: MemoryDriver
) -> None:
    async with admin() as session:
        user = User(id=3, email="c@example.com", name="Cy")
        order = Order(id=100, user_id=3, total=12.5)
        membership = Membership(team="core", user_id=3, role="dev")
        session.add_all([user, order, membership])
        await session.commit()
        await sa_testapp.process_order(order=order, user=user).dispatch()
        await sa_testapp.membership_role(membership).dispatch()
        membership.role = "lead"
        order.total = 20.0
        await session.commit()
    by_task = {p["task"]: p for p in payloads(memory)}
    assert by_task["sa_testapp:membership_role"]["args"][0]["v"] == [
        "sa_testapp:Membership",
        "core",
        3,
    ]
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 2
    assert sorted(sa_testapp.seen) == [
        ("membership", "core", 3, "lead"),
        ("order", 100, 20.0, "Cy"),
    ]
