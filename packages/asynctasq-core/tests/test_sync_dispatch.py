"""Sync dispatch: one background loop for every thread, refused inside a running loop,
stopped at exit. (Against Redis and PostgreSQL: tests/test_sync_dispatch_servers.py.)"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from asynctasq import task
from asynctasq.config import set_global_config
from asynctasq.core import sync
from asynctasq.core.sync import dispatch_many_sync, dispatch_thread
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.testing import MemoryDriver, decode_message


@task(queue="sync")
async def record(n: int) -> None:
    return None


@pytest.fixture
def memory() -> Iterator[MemoryDriver]:
    namespace = f"sync-{uuid.uuid4().hex}"
    set_global_config(memory={"namespace": namespace})
    yield MemoryDriver(namespace=namespace)
    sync.close()
    MemoryDriver(namespace=namespace).clear()


def test_dispatch_sync_queues_the_task(memory: MemoryDriver) -> None:
    task_id = record(1).dispatch_sync()
    [message] = memory.queued("sync")
    assert message.task_id == task_id
    assert decode_message(message.payload).args == (1,)
    thread = dispatch_thread()
    assert thread is not None and thread.name == "asynctasq-dispatch" and thread.daemon


def test_one_loop_serves_every_thread(memory: MemoryDriver) -> None:
    """A WSGI-style pool: 16 threads x 50 dispatches, each task queued exactly once."""

    def handle(worker: int) -> list[str]:
        return [record(worker * 1000 + i).dispatch_sync(timeout=30) for i in range(50)]

    with ThreadPoolExecutor(16) as pool:
        ids = [task_id for chunk in pool.map(handle, range(16)) for task_id in chunk]
    assert len(ids) == len(set(ids)) == 800
    numbers = sorted(decode_message(m.payload).args[0] for m in memory.queued("sync"))
    assert numbers == sorted(w * 1000 + i for w in range(16) for i in range(50))
    assert sorted(m.task_id for m in memory.queued("sync")) == sorted(ids)
    assert [t.name for t in threading.enumerate()].count("asynctasq-dispatch") == 1


def test_dispatch_many_sync_queues_all_in_order(memory: MemoryDriver) -> None:
    ids = dispatch_many_sync([record(1), record(2), record(3)])
    assert [m.task_id for m in memory.queued("sync")] == ids


async def test_refused_inside_a_running_loop_naming_the_async_method(
    memory: MemoryDriver,
) -> None:
    call = record(1)
    with pytest.raises(RuntimeError, match=r"running event loop.*await task.dispatch\(\)"):
        call.dispatch_sync()
    with pytest.raises(RuntimeError, match=r"await asynctasq.dispatch_many"):
        dispatch_many_sync([])
    await call.dispatch()
    assert len(memory.queued("sync")) == 1


def test_close_stops_the_thread_and_the_next_dispatch_starts_again(memory: MemoryDriver) -> None:
    record(1).dispatch_sync()
    first = dispatch_thread()
    assert first is not None
    sync.close()
    assert dispatch_thread() is None and not first.is_alive()
    record(2).dispatch_sync()
    second = dispatch_thread()
    assert second is not None and second is not first and second.is_alive()
    assert len(memory.queued("sync")) == 2


def test_the_loop_thread_stops_at_interpreter_exit(tmp_path: object) -> None:
    """At exit the drivers are closed on the loop, then the loop thread ends, with nothing
    reported on stderr."""
    script = textwrap.dedent(
        """
        import atexit
        import threading

        from asynctasq import task
        from asynctasq.config import set_global_config
        from asynctasq.drivers.memory import MemoryDriver

        closed = []
        real_close = MemoryDriver.close

        async def close(self):
            closed.append(threading.current_thread().name)
            await real_close(self)

        MemoryDriver.close = close


        def check():
            # Registered before the dispatch loop's own handler, so it runs after it.
            names = [t.name for t in threading.enumerate()]
            print("threads", "asynctasq-dispatch" in names, "closed", closed, flush=True)

        atexit.register(check)


        @task(queue="q")
        async def noop() -> None: ...


        set_global_config(driver="memory", memory={"namespace": "exit"})
        print("id", len(noop().dispatch_sync()), flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["id 36", "threads False closed ['asynctasq-dispatch']"]
    assert proc.stderr == ""


class _Stuck(MemoryDriver):
    """Enqueue hangs (a broker that stopped answering)."""

    async def enqueue(self, message: OutgoingMessage) -> None:
        await asyncio.sleep(5)


class _Refusing(MemoryDriver):
    """Enqueue fails with a TimeoutError of its own (a client's request timeout)."""

    async def enqueue(self, message: OutgoingMessage) -> None:
        raise TimeoutError("the broker's own timeout")


@task(queue="sync", driver=_Stuck(namespace="sync-stuck"))
async def stuck() -> None:
    return None


@task(queue="sync", driver=_Refusing(namespace="sync-refusing"))
async def refused() -> None:
    return None


def test_a_wait_that_runs_out_and_a_timeout_of_the_call_are_told_apart(
    memory: MemoryDriver,
) -> None:
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s"):
        stuck().dispatch_sync(timeout=0.2)
    with pytest.raises(TimeoutError, match="the broker's own timeout"):
        refused().dispatch_sync(timeout=5)


def test_the_first_sync_dispatch_may_come_from_an_atexit_hook() -> None:
    """An exit hook that queues a last task, in a process that dispatched nothing before:
    the dispatch loop starts during shutdown, when the stdlib no longer lets a module that
    registers an exit hook of its own be imported."""
    script = textwrap.dedent(
        """
        import atexit

        from asynctasq import task


        @task(queue="q")
        async def last() -> None: ...


        atexit.register(lambda: print("id", len(last().dispatch_sync(timeout=10)), flush=True))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ASYNCTASQ_DRIVER": "memory"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["id 36"], proc.stderr
    assert proc.stderr == ""


def test_a_dispatch_cut_off_by_close_says_so(
    memory: MemoryDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a bare CancelledError: the caller learns the loop closed under the call, and that
    it cannot know whether the task was queued."""
    entered = threading.Event()

    async def stuck(self: MemoryDriver, message: OutgoingMessage) -> None:
        entered.set()
        await asyncio.sleep(30)

    monkeypatch.setattr(MemoryDriver, "enqueue", stuck)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            record(1).dispatch_sync(timeout=20)
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert entered.wait(10)
    sync.close()
    caller.join(10)
    [error] = errors
    assert isinstance(error, RuntimeError), repr(error)
    assert "may or may not have reached the broker" in str(error)


def test_a_cancellation_raised_by_the_dispatch_itself_is_not_called_a_close(
    memory: MemoryDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cancelled(self: MemoryDriver, message: OutgoingMessage) -> None:
        raise asyncio.CancelledError

    monkeypatch.setattr(MemoryDriver, "enqueue", cancelled)
    with pytest.raises(concurrent.futures.CancelledError):
        record(1).dispatch_sync(timeout=20)
    assert dispatch_thread() is not None  # the loop is still there
