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

from asynctasq.drivers.base import DeadLetter
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker

TASKS_DIR = str(Path(__file__).parent / "tasks_pkg")
DIED = "asynctasq.executors.process.TaskProcessDiedError"


@pytest.fixture
def tasks() -> Iterator[ModuleType]:
    sys.path.insert(0, TASKS_DIR)
    import process_death_tasks

    yield process_death_tasks
    sys.path.remove(TASKS_DIR)


async def dead_letters_after_worker(count: int) -> list[DeadLetter]:
    """Run a worker on the memory driver until `count` tasks are dead-lettered."""
    driver = await get_driver()
    worker = Worker(
        driver,
        queues=["child-death"],
        install_signal_handlers=False,
        poll_wait=0.1,
        allowed_roots=[TASKS_DIR],
        process_pool_size=1,
    )
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
