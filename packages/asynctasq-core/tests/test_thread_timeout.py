"""A sync task in a thread, past its timeout: the worker raises inside its thread, so nothing
it would do after its current call happens, and its retry starts only once it stopped."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from asynctasq import task
from asynctasq.drivers.connections import get_driver
from asynctasq.executors.interrupt import InterruptibleCall, ThreadInterrupted
from asynctasq.worker import Worker

events: list[tuple[str, int, float]] = []


@task(queue="thread-timeout", timeout=0.3, max_attempts=2, retry_delay=0)
def sleeps_then_writes() -> None:
    """A blocking call past the timeout, then a side effect that must not happen."""
    events.append(("start", threading.get_ident(), time.monotonic()))
    time.sleep(1.0)
    events.append(("after the sleep", threading.get_ident(), time.monotonic()))


@task(queue="thread-timeout", timeout=0.3, max_attempts=1)
def spins() -> None:
    """Pure Python that never ends by itself, and swallows ordinary exceptions."""
    events.append(("start", threading.get_ident(), time.monotonic()))
    while True:
        try:
            sum(range(1000))
        except Exception:  # what careless task code does
            continue


@task(queue="thread-timeout", max_attempts=1)
def holds_the_only_thread() -> None:
    events.append(("holder", threading.get_ident(), time.monotonic()))
    time.sleep(1.5)


@task(queue="thread-timeout", timeout=0.3, max_attempts=1)
def waits_for_a_thread() -> None:
    events.append(("late start", threading.get_ident(), time.monotonic()))


async def _run_until_dead(count: int, within: float = 20, **kwargs: Any) -> Any:
    driver = await get_driver()
    worker = Worker(driver, queues=["thread-timeout"], install_signal_handlers=False, **kwargs)
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + within
    try:
        while len(await driver.list_dead_letters(queue="thread-timeout")) < count:
            assert not runner.done(), runner.exception()
            assert time.monotonic() < deadline, events
            await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
    return await driver.list_dead_letters(queue="thread-timeout")


async def test_a_timed_out_thread_does_nothing_after_its_blocking_call() -> None:
    events.clear()
    await sleeps_then_writes().dispatch()
    [letter] = await _run_until_dead(1)
    await asyncio.sleep(1.2)  # long enough for a thread left running to get there
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"
    assert "was stopped" in letter.failure.message
    starts = [t for name, _, t in events if name == "start"]
    assert len(starts) == 2 and not [e for e in events if e[0] == "after the sleep"]
    # The retry began only after the first run's thread had come back from its sleep.
    assert starts[1] - starts[0] >= 0.9


async def test_a_spinning_thread_is_stopped_at_its_timeout() -> None:
    events.clear()
    started = time.monotonic()
    await spins().dispatch()
    [letter] = await _run_until_dead(1)
    assert time.monotonic() - started < 5
    assert "was stopped" in letter.failure.message
    [(_, ident, _)] = events
    for _ in range(40):  # the thread is free again, not spinning for ever
        if not any(t.ident == ident and t.is_alive() for t in threading.enumerate()):
            break
        busy = _busy(ident)
        if not busy:
            break
        await asyncio.sleep(0.05)
    assert not _busy(ident)


def _busy(ident: int) -> bool:
    """Whether thread `ident` is inside `spins` now."""
    import sys

    frame = sys._current_frames().get(ident)
    while frame is not None:
        if frame.f_code.co_name == "spins":
            return True
        frame = frame.f_back
    return False


def test_an_interrupt_never_reaches_the_call_after_it() -> None:
    call = InterruptibleCall(lambda: "done")
    assert call() == "done"
    assert not call.interrupt()  # ended: the thread may be running something else now


def test_an_interrupt_lands_in_the_running_call() -> None:
    started, outcome = threading.Event(), []

    def body() -> None:
        started.set()
        while True:
            time.sleep(0.01)

    call = InterruptibleCall(body)

    def run() -> None:
        try:
            call()
        except ThreadInterrupted:
            outcome.append("interrupted")

    thread = threading.Thread(target=run)
    thread.start()
    started.wait(5)
    assert call.interrupt()
    thread.join(5)
    assert outcome == ["interrupted"]


def test_a_call_interrupted_before_it_started_never_runs() -> None:
    ran: list[str] = []
    call = InterruptibleCall(lambda: ran.append("ran"))
    assert not call.interrupt()  # waiting for a free thread: nothing to wait for
    with pytest.raises(ThreadInterrupted):
        call()
    assert ran == []


async def test_a_task_timed_out_before_it_got_a_thread_never_runs() -> None:
    events.clear()
    await holds_the_only_thread().dispatch()
    await waits_for_a_thread().dispatch()
    [letter] = await _run_until_dead(1, thread_pool_size=1)
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"
    await asyncio.sleep(1.8)  # the one thread is free again by now
    assert [e[0] for e in events] == ["holder"]
