"""dispatch_after_commit: nothing is queued before the commit, nothing after a rollback."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import sa_testapp
from sa_testapp import User
from sa_testsupport import Backend, run_worker
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

import asynctasq.core.sync as sync_dispatch
from asynctasq.serializer import SerializationError
from asynctasq.testing import MemoryDriver
from asynctasq_orm_sqlalchemy import dispatch_after_commit


def queued_ids(memory: MemoryDriver) -> list[int]:
    return [orjson.loads(r.payload)["args"][0]["v"][1] for r in memory.messages()]


def new_user(name: str) -> User:
    return User(email=f"{name}@example.com", name=name)


@pytest.mark.parametrize("backend", ["pg-asyncpg", "mysql-aiomysql"], indirect=True)
async def test_async_session(backend: Backend, memory: MemoryDriver) -> None:
    engine = create_async_engine(backend.url)
    make = async_sessionmaker(engine, expire_on_commit=True)
    try:
        async with make() as session:
            dispatch_after_commit(session, sa_testapp.greet(new_user("rolled")))
            session.add(new_user("rolled"))
            await session.flush()
            await session.rollback()
        assert queued_ids(memory) == []

        async with make() as session:
            user = new_user("kept")
            session.add(user)
            dispatch_after_commit(session, sa_testapp.greet(user))  # no primary key yet
            await session.flush()
            assert queued_ids(memory) == []
            async with session.begin_nested() as savepoint:
                inner = new_user("inner")
                session.add(inner)
                dispatch_after_commit(session, sa_testapp.greet(inner))
                await savepoint.rollback()
            async with session.begin_nested():
                released = new_user("released")
                session.add(released)
                dispatch_after_commit(session, sa_testapp.greet(released))
            assert queued_ids(memory) == []
            expected = sorted([user.id, released.id])
            await session.commit()  # expires the instances: the ids travel all the same
            assert sorted(queued_ids(memory)) == expected

        async with make() as session:  # closed without commit: dropped
            dispatch_after_commit(session, sa_testapp.greet(new_user("closed")))
            session.add(new_user("closed"))
            await session.flush()
        assert len(queued_ids(memory)) == 2
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["pg-asyncpg"], indirect=True)
async def test_async_dispatch_error_is_raised_from_commit(
    backend: Backend, memory: MemoryDriver
) -> None:
    engine = create_async_engine(backend.url)
    make = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with make() as session:
            user = new_user("committed")
            session.add(user)
            dispatch_after_commit(session, sa_testapp.wide_task(object()))
            with pytest.raises(SerializationError):
                await session.commit()
            assert await session.get(User, user.id) is not None  # committed, session usable
    finally:
        await engine.dispose()


def _sync_flow(make: Callable[[], Session]) -> list[int]:
    ids = []
    with make() as session:
        dispatch_after_commit(session, sa_testapp.greet(new_user("x")))
        session.rollback()
    with make() as session:
        user = new_user("sync")
        session.add(user)
        dispatch_after_commit(session, sa_testapp.greet(user))
        session.flush()
        session.commit()
        ids.append(user.id)
    return ids


@pytest.mark.parametrize("backend", ["pg-psycopg", "mysql-pymysql"], indirect=True)
async def test_sync_session_in_a_thread(backend: Backend, memory: MemoryDriver) -> None:
    engine = create_engine(backend.url)
    try:
        ids = await asyncio.to_thread(_sync_flow, sessionmaker(engine, expire_on_commit=False))
    finally:
        engine.dispose()
    assert queued_ids(memory) == ids


@pytest.mark.parametrize("backend", ["pg-psycopg"], indirect=True)
async def test_sync_session_queues_through_the_sync_dispatch_loop(
    backend: Backend, memory: MemoryDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop whose drivers stay connected between commits, as for dispatch_many_sync: not
    # a new event loop (and a new connection) per commit.
    threads: list[str] = []
    enqueue_many = MemoryDriver.enqueue_many

    async def recorded(self: MemoryDriver, messages: Any) -> None:
        threads.append(threading.current_thread().name)
        await enqueue_many(self, messages)

    monkeypatch.setattr(MemoryDriver, "enqueue_many", recorded)
    engine = create_engine(backend.url)
    try:
        make = sessionmaker(engine, expire_on_commit=False)
        ids = await asyncio.to_thread(lambda: _sync_flow(make) + _sync_flow(make))
    finally:
        engine.dispose()
        await asyncio.to_thread(sync_dispatch.close)
    assert queued_ids(memory) == ids
    assert threads == [sync_dispatch.THREAD_NAME] * 2


@pytest.mark.parametrize("backend", ["pg-psycopg"], indirect=True)
async def test_sync_session_on_the_running_loop(backend: Backend, memory: MemoryDriver) -> None:
    engine = create_engine(backend.url)
    try:
        ids = _sync_flow(sessionmaker(engine, expire_on_commit=False))
        for _ in range(100):
            if queued_ids(memory):
                break
            await asyncio.sleep(0.01)
    finally:
        engine.dispose()
    assert queued_ids(memory) == ids


@pytest.mark.parametrize("backend", ["mysql-aiomysql"], indirect=True)
async def test_queued_task_sees_the_committed_row(
    backend: Backend, factory: Any, memory: MemoryDriver
) -> None:
    engine = create_async_engine(backend.url)
    try:
        async with async_sessionmaker(engine)() as session:
            user = new_user("fresh")
            session.add(user)
            dispatch_after_commit(session, sa_testapp.greet(user))
            await session.commit()
    finally:
        await engine.dispose()
    worker = await run_worker(memory)
    assert worker.stats.succeeded == 1 and sa_testapp.seen[0][2] == "fresh"


def test_a_configured_task_dropped_with_its_session_does_not_warn() -> None:
    # Handed over to the session: dropping it without a commit is the point, not a forgotten
    # dispatch, so the "never dispatched" warning must stay quiet.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = Session()
        dispatch_after_commit(session, sa_testapp.greet(new_user("dropped")).delay(5))
        session.close()
        del session
        gc.collect()
    assert [str(w.message) for w in caught if "never dispatched" in str(w.message)] == []
