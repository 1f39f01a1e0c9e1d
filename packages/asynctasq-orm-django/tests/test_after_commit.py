"""dispatch_after_commit: queued when the transaction commits, never on rollback."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import orjson
import pytest
from asgiref.sync import sync_to_async
from dj_testapp import tasks
from dj_testapp.models import User
from django.db import connections, transaction

from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker
from asynctasq_orm_django import dispatch_after_commit

pytestmark = pytest.mark.usefixtures("db")


class Rollback(Exception):
    pass


def queued_pks(memory: MemoryDriver) -> list[Any]:
    return [orjson.loads(r.payload)["args"][0]["v"][1] for r in memory.messages()]


def flow(memory: MemoryDriver) -> list[int]:
    """Sync Django code: a rolled-back block, a savepoint, a committed block."""
    try:
        with transaction.atomic():
            gone = User.objects.create(email="r@example.com", name="Rolled")
            dispatch_after_commit(tasks.greet(gone))
            raise Rollback
    except Rollback:
        pass
    assert queued_pks(memory) == []
    with transaction.atomic():
        kept = User.objects.create(email="k@example.com", name="Kept")
        dispatch_after_commit(tasks.greet(kept))
        try:
            with transaction.atomic():
                inner = User.objects.create(email="i@example.com", name="Inner")
                dispatch_after_commit(tasks.greet(inner))
                raise Rollback
        except Rollback:
            pass
        assert queued_pks(memory) == []
    assert queued_pks(memory) == [kept.pk]
    return [kept.pk]


async def test_from_async_code_through_sync_to_async(memory: MemoryDriver) -> None:
    expected = await sync_to_async(flow)(memory)
    assert queued_pks(memory) == expected
    worker = Worker(memory, queues=["dj"], burst=True, install_signal_handlers=False)
    await worker.run()
    assert tasks.seen == [("greet", expected[0], "Kept")]


def flow_in_own_thread(memory: MemoryDriver) -> list[int]:
    try:
        return flow(memory)
    finally:
        connections.close_all()  # this thread's connection: a thread of its own closes it


async def test_from_plain_sync_code_without_a_loop(memory: MemoryDriver) -> None:
    expected = await asyncio.to_thread(flow_in_own_thread, memory)
    assert queued_pks(memory) == expected


def test_outside_a_transaction_it_is_queued_at_once(memory: MemoryDriver) -> None:
    user = User.objects.create(email="a@example.com", name="Auto")
    dispatch_after_commit(tasks.greet(user))
    assert queued_pks(memory) == [user.pk]


def test_a_configured_task_dropped_on_rollback_does_not_warn(memory: MemoryDriver) -> None:
    # Handed over to the transaction: dropping it on rollback is the point, not a forgotten
    # dispatch, so the "never dispatched" warning must stay quiet.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with transaction.atomic():
                gone = User.objects.create(email="d@example.com", name="Dropped")
                dispatch_after_commit(tasks.greet(gone).delay(5))
                raise Rollback
        except Rollback:
            pass
        gc.collect()
    assert queued_pks(memory) == []
    assert [str(w.message) for w in caught if "never dispatched" in str(w.message)] == []
