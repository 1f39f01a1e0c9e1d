"""Sync dispatch from a WSGI-style thread pool against real Redis and PostgreSQL: 16 threads
x 50 dispatches through the one background loop, every task arrives exactly once (drained
by a real worker)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.servers import configured_as, drop, section

from asynctasq import task
from asynctasq.core import sync
from asynctasq.core.results import TaskId
from asynctasq.drivers.connections import close_drivers
from asynctasq.errors import ResultTimeoutError
from asynctasq.lifecycle.control import CancelOutcome
from asynctasq.worker import Worker

pytestmark = pytest.mark.slow

T = TypeVar("T")

THREADS, PER_THREAD = 16, 50
arrived: Counter[int] = Counter()


@task(queue="sync-servers")
async def arrive(n: int) -> None:
    arrived[n] += 1


@pytest.fixture(params=["redis", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    name: str = request.param
    where = section(name, "atq_sync", tmp_path)
    if name == "postgres":
        where.values.update(min_pool_size=1, max_pool_size=4)
    arrived.clear()
    try:
        # On the defaults, not on what the session had configured.
        with configured_as(where.settings(), fresh=True):
            try:
                yield name
            finally:
                sync.close()
    finally:
        asyncio.run(drop(where))


def test_a_thread_pool_dispatches_each_task_exactly_once(server: str) -> None:
    def request_handler(thread: int) -> list[str]:
        return [arrive(thread * 1000 + i).dispatch_sync(timeout=60) for i in range(PER_THREAD)]

    with ThreadPoolExecutor(THREADS) as pool:
        ids = [i for chunk in pool.map(request_handler, range(THREADS)) for i in chunk]
    assert len(set(ids)) == THREADS * PER_THREAD
    loop_thread = sync.dispatch_thread()
    assert loop_thread is not None and loop_thread.is_alive()

    # One more batch through the same loop: the driver (and its connections) is reused.
    more = sync.dispatch_many_sync([arrive(-1), arrive(-2)])
    assert len(more) == 2

    worker = Worker(
        queues=["sync-servers"], burst=True, concurrency=50, install_signal_handlers=False
    )
    asyncio.run(worker.run())
    expected = {t * 1000 + i for t in range(THREADS) for i in range(PER_THREAD)} | {-1, -2}
    assert set(arrived) == expected
    assert set(arrived.values()) == {1}, "a task ran more than once"
    assert worker.stats.succeeded == len(expected)


@task(queue="sync-servers", track=True, keep_result=True)
async def doubled(n: int) -> int:
    return 2 * n


def test_an_id_from_a_sync_dispatch_works_on_any_event_loop(server: str) -> None:
    # Its driver's connections belong to the background loop: the id must not carry them
    # into the caller's own loop (asyncio.run in a script, a later async view).
    task_id = doubled(21).dispatch_sync(timeout=60)
    [other] = sync.dispatch_many_sync([doubled(1)], timeout=60)

    async def follow() -> tuple[object, object, int]:
        try:
            queued = await task_id.status()
            worker = Worker(queues=["sync-servers"], burst=True, install_signal_handlers=False)
            await worker.run()
            return queued, (await other.status()), await task_id.result(timeout=10)
        finally:
            await close_drivers()  # what this loop built for the ids

    queued, done, value = asyncio.run(follow())
    assert getattr(queued, "state", None) == "queued"
    assert getattr(done, "state", None) == "succeeded"
    assert value == 42


@task(queue="sync-servers", track=True)
async def never_runs() -> None:
    raise AssertionError("cancelled while queued: must not run")


def test_sync_code_waits_for_the_result_reads_the_status_and_cancels(server: str) -> None:
    task_id = doubled(21).dispatch_sync(timeout=60)
    cancelled = never_runs().dispatch_sync(timeout=60)
    assert getattr(task_id.status_sync(), "state", None) == "queued"
    with pytest.raises(ResultTimeoutError):
        task_id.result_sync(timeout=0.3)  # no worker yet
    assert cancelled.cancel_sync() == CancelOutcome.REQUESTED

    async def drain() -> None:
        try:
            worker = Worker(queues=["sync-servers"], burst=True, install_signal_handlers=False)
            await worker.run()
        finally:
            await close_drivers()

    asyncio.run(drain())
    assert task_id.result_sync(timeout=10) == 42
    assert getattr(task_id.status_sync(), "state", None) == "succeeded"
    assert getattr(cancelled.status_sync(), "state", None) == "cancelled"
    assert task_id.cancel_sync() == CancelOutcome.ALREADY_FINISHED


async def test_the_sync_waits_are_refused_inside_a_running_loop_naming_the_await() -> None:
    task_id = TaskId[int]("00000000-0000-4000-8000-000000000000")
    with pytest.raises(RuntimeError, match=r"await task_id\.result\(\)"):
        task_id.result_sync(timeout=1)
    with pytest.raises(RuntimeError, match=r"await task_id\.status\(\)"):
        task_id.status_sync()


def test_an_id_from_an_async_dispatch_waits_from_sync_code(server: str) -> None:
    # An async view queues on its own loop; sync code (another thread) waits for the result:
    # the id must not carry the view's connections onto the sync loop.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    try:
        task_id = on_loop(doubled(4).dispatch())
        worker = Worker(queues=["sync-servers"], burst=True, install_signal_handlers=False)
        on_loop(worker.run())
        assert task_id.result_sync(timeout=10) == 8
        assert getattr(task_id.status_sync(), "state", None) == "succeeded"
    finally:
        on_loop(close_drivers())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
