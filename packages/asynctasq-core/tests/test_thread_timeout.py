"""A sync task in a thread, past its timeout. Python cannot stop a thread safely, so the task
is asked to stop (``current_task().cancel_requested``), its run fails once the thread has
returned, and its retry never runs beside it; its timeout counts from when a thread takes it,
and one that waits longer than that for a free thread never runs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from asynctasq import task
from asynctasq.drivers.connections import get_driver
from asynctasq.executors.thread_call import Abandoned, ThreadCall
from asynctasq.lifecycle.context import current_task
from asynctasq.worker import Worker

events: list[tuple[str, float]] = []


def note(name: str) -> None:
    events.append((name, time.monotonic()))


@task(queue="thread-timeout", timeout=0.3, max_attempts=2, retry_delay=0)
def sleeps_past_its_timeout() -> None:
    note("start")
    time.sleep(1.0)
    note("end")


@task(queue="thread-timeout", timeout=0.3, max_attempts=1)
def stops_when_asked() -> None:
    note("start")
    while not current_task().cancel_requested:
        time.sleep(0.01)
    note("asked to stop")


@task(queue="thread-timeout", timeout=0.2, max_attempts=1)
def far_past_its_timeout() -> None:
    note("long start")
    time.sleep(1.5)
    note("long end")


@task(queue="thread-timeout", max_attempts=1)
def holds_the_only_thread() -> None:
    note("holder")
    time.sleep(1.5)


@task(queue="thread-timeout", timeout=0.3, max_attempts=1)
def waits_for_a_thread() -> None:
    note("late start")


@task(queue="thread-timeout", max_attempts=1)
def holds_the_thread_briefly() -> None:
    note("brief holder")
    time.sleep(0.4)


@task(queue="thread-timeout", timeout=0.5, max_attempts=1)
def runs_after_waiting() -> None:
    note("late start")
    time.sleep(0.3)
    note("late end")


@task(queue="thread-timeout", timeout=0.2, max_attempts=1)
def logs_in_a_loop(n: int) -> None:
    log = logging.getLogger("thread-timeout-test")
    while not current_task().cancel_requested:
        log.warning("task %d still working", n)


@task(queue="thread-timeout")
def after_them() -> None:
    note("after")


async def _run_until(done: Any, within: float = 30, **kwargs: Any) -> list[Any]:
    driver = await get_driver()
    worker = Worker(driver, queues=["thread-timeout"], install_signal_handlers=False, **kwargs)
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + within
    try:
        while not await done(driver):
            assert not runner.done(), runner.exception()
            assert time.monotonic() < deadline, events
            await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
    return await driver.list_dead_letters(queue="thread-timeout")


def dead(count: int) -> Any:
    async def check(driver: Any) -> bool:
        return len(await driver.list_dead_letters(queue="thread-timeout")) >= count

    return check


async def test_the_retry_of_a_timed_out_thread_starts_after_it_returned() -> None:
    events.clear()
    await sleeps_past_its_timeout().dispatch()
    [letter] = await _run_until(dead(1))
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"
    assert "ran on to its end" in letter.failure.message
    names = [name for name, _ in events]
    assert names == ["start", "end", "start", "end"]  # one after the other, never beside


async def test_a_task_past_its_timeout_is_asked_to_stop() -> None:
    events.clear()
    started = time.monotonic()
    await stops_when_asked().dispatch()
    [letter] = await _run_until(dead(1))
    assert [name for name, _ in events] == ["start", "asked to stop"]
    assert events[1][1] - events[0][1] < 2  # at its timeout, not after THREAD_STOP_WAIT
    assert time.monotonic() - started < 10
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"


async def test_a_task_timed_out_before_it_got_a_thread_never_runs() -> None:
    """Every thread stuck: the wait for one is bounded by the timeout too, so the task fails
    (to be retried) instead of holding its slot, and its worker, for ever."""
    events.clear()
    await holds_the_only_thread().dispatch()
    await waits_for_a_thread().dispatch()
    [letter] = await _run_until(dead(1), thread_pool_size=1)
    assert "free thread and did not run" in letter.failure.message
    await asyncio.sleep(1.8)  # the one thread is free again by now
    assert [name for name, _ in events] == ["holder"]


async def test_the_wait_for_a_free_thread_does_not_count_against_the_timeout() -> None:
    """The timeout is how long a run may take: a task that waited 0.4 s for the only thread
    and then ran 0.3 s of its 0.5 s succeeds (it was failed, its work done)."""
    events.clear()
    await holds_the_thread_briefly().dispatch()
    await runs_after_waiting().dispatch()

    async def ran(driver: Any) -> bool:
        return [name for name, _ in events] == ["brief holder", "late start", "late end"]

    assert await _run_until(ran, thread_pool_size=1) == []
    await asyncio.sleep(0.5)  # a timeout would dead-letter it by now
    assert await (await get_driver()).list_dead_letters(queue="thread-timeout") == []


async def test_timed_out_threads_that_log_do_not_freeze_the_worker() -> None:
    """An exception forced into a thread can land between a lock's acquire() and its try,
    leaving the lock held for good: the worker then froze on its next log line. Nothing is
    forced into a task's thread, so the worker goes on to the next task."""
    events.clear()
    for n in range(4):
        await logs_in_a_loop(n).dispatch()
    await after_them().dispatch()

    async def after_ran(driver: Any) -> bool:
        return ("after" in [name for name, _ in events]) and len(
            await driver.list_dead_letters(queue="thread-timeout")
        ) == 4

    await _run_until(after_ran, concurrency=5)


def test_a_call_given_up_before_it_started_never_runs() -> None:
    ran: list[str] = []
    call = ThreadCall(lambda: ran.append("ran"))
    assert not call.give_up()  # waiting for a free thread: it never starts now
    with pytest.raises(Abandoned):
        call()
    assert ran == []


def test_a_started_call_runs_on() -> None:
    started, release, ran = threading.Event(), threading.Event(), []

    def body() -> None:
        started.set()
        release.wait(5)
        ran.append("ran")

    call = ThreadCall(body)
    thread = threading.Thread(target=call)
    thread.start()
    started.wait(5)
    assert call.give_up()  # started: it runs to its end
    release.set()
    thread.join(5)
    assert ran == ["ran"]


async def test_a_thread_still_running_after_the_wait_is_reported_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asynctasq.executors import router

    monkeypatch.setattr(router, "THREAD_STOP_WAIT", 0.4)
    events.clear()
    await far_past_its_timeout().dispatch()
    [letter] = await _run_until(dead(1))
    assert "is still running" in letter.failure.message  # not "ran on to its end"
    assert [name for name, _ in events] == ["long start"]
