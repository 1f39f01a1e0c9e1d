"""A process task whose child dies: the recorded failure says which task and how it ended."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from asynctasq.drivers.base import DeadLetter, Driver
from asynctasq.drivers.connections import get_driver
from asynctasq.testing.crash import wait_until
from asynctasq.worker import Worker

TASKS_DIR = str(Path(__file__).parent / "tasks_pkg")
DIED = "asynctasq.executors.process.TaskProcessDiedError"


@pytest.fixture
def tasks() -> Iterator[ModuleType]:
    sys.path.insert(0, TASKS_DIR)
    import process_death_tasks

    yield process_death_tasks
    sys.path.remove(TASKS_DIR)


def one_child_worker(driver: Driver) -> Worker:
    """A worker on `driver` with a one-child process pool, serving the dying tasks' queue."""
    return Worker(
        driver,
        queues=["child-death"],
        install_signal_handlers=False,
        poll_wait=0.1,
        allowed_roots=[TASKS_DIR],
        process_pool_size=1,
    )


async def dead_letters_after_worker(count: int) -> list[DeadLetter]:
    """Run a worker on the memory driver until `count` tasks are dead-lettered."""
    driver = await get_driver()
    worker = one_child_worker(driver)
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 60
    try:
        while len(letters := await driver.list_dead_letters()) < count:
            assert not runner.done(), runner.exception()
            assert time.monotonic() < deadline, "the dying tasks were not dead-lettered"
            await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
    return letters


async def test_a_child_that_exits_or_is_killed_is_reported_with_its_code_or_signal(
    tasks: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asynctasq.worker")
    exited = await tasks.exit_with_three().dispatch()
    killed = await tasks.killed_by_sigkill().dispatch()
    own = await tasks.raises_process_expired().dispatch()

    letters = {letter.task_id: letter for letter in await dead_letters_after_worker(3)}

    exit_failure = letters[exited].failure
    assert exit_failure.exception_type == DIED
    assert "process_death_tasks:exit_with_three" in exit_failure.message
    assert "exited with code 3" in exit_failure.message
    kill_failure = letters[killed].failure
    assert kill_failure.exception_type == DIED
    assert "process_death_tasks:killed_by_sigkill" in kill_failure.message
    assert "killed by signal SIGKILL (9)" in kill_failure.message
    # a ProcessExpired the task's own code raised is its error, not a death of our child
    assert letters[own].failure.message == "a pool inside the task lost its child"
    # the first run of exit_with_three was retried: the retry's log line says the same
    [retried] = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert "exit_with_three" in retried and "exited with code 3" in retried
    assert "Abnormal termination" not in retried


async def test_a_death_seen_before_the_childs_acknowledgement_is_the_same_death(
    tasks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a loaded machine pebble's message thread can take longer to read that a child
    # took a task than its manager thread takes to see that child dead. Left to itself,
    # pebble then knows no task of that child, declares the whole pool broken
    # (BrokenProcessPool for every task in it), and the pool never runs a task again.
    from pebble.pool.process import PoolManager

    read = PoolManager.process_next_message

    def late(self: PoolManager, timeout: float) -> None:
        time.sleep(0.4)
        read(self, timeout)

    monkeypatch.setattr(PoolManager, "process_next_message", late)
    exited = await tasks.exit_with_three().dispatch()
    killed = await tasks.killed_by_sigkill().dispatch()

    letters = {letter.task_id: letter for letter in await dead_letters_after_worker(2)}

    assert letters[exited].failure.exception_type == DIED, letters[exited].failure
    assert "exited with code 3" in letters[exited].failure.message
    assert letters[killed].failure.exception_type == DIED, letters[killed].failure
    assert "killed by signal SIGKILL (9)" in letters[killed].failure.message


async def test_a_pool_pebble_gave_up_on_is_replaced_for_the_next_tasks(
    tasks: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A result the worker cannot unpickle makes pebble declare the whole pool broken: that
    # task fails, and without a new pool every later process task would fail as well.
    caplog.set_level(logging.WARNING, logger="asynctasq.worker")
    driver = await get_driver()
    worker = one_child_worker(driver)
    runner = asyncio.create_task(worker.run())
    marker = tmp_path / "ran"
    try:
        broken = await tasks.unreadable_result().dispatch()
        await wait_until(driver.list_dead_letters, 60, "the unreadable result dead-lettered")
        await tasks.touch(str(marker)).dispatch()

        async def ran_or_failed() -> bool:
            return marker.exists() or len(await driver.list_dead_letters()) > 1

        await wait_until(ran_or_failed, 60, "a process task after the broken pool")
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
    [letter] = await driver.list_dead_letters()
    assert letter.task_id == broken
    assert letter.failure.exception_type == "concurrent.futures.process.BrokenProcessPool"
    assert marker.exists()
    assert "the process pool broke; starting a new one" in caplog.text
