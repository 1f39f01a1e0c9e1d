"""``retry_on`` / ``dont_retry_on`` end to end on the memory driver: an exception the
filters select is retried; any other dead-letters the task at once, with its error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asynctasq import task
from asynctasq.core.task import SyncTask, Task
from asynctasq.drivers.base import DeadLetter
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import PermanentError
from asynctasq.worker import Worker

QUEUE = "retry-filters"
runs: list[str] = []
failed_hooks: list[str] = []


class CardDeclined(PermanentError):
    """A failure no retry can fix."""


ERRORS: dict[str, type[Exception]] = {
    "connection": ConnectionError,
    "refused": ConnectionRefusedError,  # a subclass of ConnectionError
    "timeout": TimeoutError,
    "value": ValueError,
    "key": KeyError,
    "missing": FileNotFoundError,  # an OSError, as ConnectionError is
    "declined": CardDeclined,
}


@pytest.fixture(autouse=True)
def _clear() -> None:
    runs.clear()
    failed_hooks.clear()


@task(queue=QUEUE, max_attempts=3, retry_delay=0, retry_on=(ConnectionError, TimeoutError))
async def fetch(error: str) -> None:
    runs.append(error)
    raise ERRORS[error](error)


@task(queue=QUEUE, max_attempts=3, retry_delay=0, retry_on=ConnectionError)
def fetch_sync(error: str) -> None:
    runs.append(error)
    raise ERRORS[error](error)


@task(queue=QUEUE, max_attempts=3, retry_delay=0, retry_on=OSError, dont_retry_on=FileNotFoundError)
async def read(error: str) -> None:
    runs.append(error)
    raise ERRORS[error](error)


@task(queue=QUEUE, max_attempts=3, retry_delay=0, dont_retry_on=(ValueError, KeyError))
async def parse(error: str) -> None:
    runs.append(error)
    raise ERRORS[error](error)


@task(queue=QUEUE, max_attempts=3, retry_delay=0)
async def charge(error: str) -> None:
    runs.append(error)
    raise ERRORS[error](error)


class Upload(Task[None]):
    queue = QUEUE
    max_retries = 3
    retry_delay = 0
    retry_on = (ConnectionError,)

    def __init__(self, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    async def handle(self) -> None:
        runs.append(self.error)
        raise ERRORS[self.error](self.error)

    async def failed(self, exception: Exception) -> None:
        failed_hooks.append(type(exception).__name__)


class SyncUpload(SyncTask[None]):
    queue = QUEUE
    max_retries = 3
    retry_delay = 0
    dont_retry_on = ValueError

    def __init__(self, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def handle_sync(self) -> None:
        runs.append(self.error)
        raise ERRORS[self.error](self.error)


class Stubborn(Upload):
    """Overrides should_retry: it decides alone, whatever retry_on says."""

    def should_retry(self, exception: Exception) -> bool:
        return True


class Widened(Upload):
    """Keeps the filters through super() and adds one exception."""

    def should_retry(self, exception: Exception) -> bool:
        return super().should_retry(exception) or isinstance(exception, KeyError)


async def work() -> Worker:
    """Run a worker until the queue is empty (retries are due at once: retry_delay=0)."""
    driver = await get_driver()
    worker = Worker(
        driver, queues=[QUEUE], burst=True, install_signal_handlers=False, poll_wait=0.05
    )
    await asyncio.wait_for(worker.run(), 60)
    return worker


async def dead_letter(task_id: str) -> DeadLetter:
    driver = await get_driver()
    [letter] = await driver.list_dead_letters(task_ids=[task_id])
    return letter


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (fetch, "connection"),
        (fetch, "refused"),  # subclasses count
        (fetch, "timeout"),
        (fetch_sync, "connection"),
        (read, "connection"),  # an OSError that dont_retry_on leaves alone
        (parse, "connection"),  # only dont_retry_on: everything else retries
        (charge, "value"),  # no filters: every exception retries
    ],
)
async def test_a_selected_exception_is_retried_until_attempts_run_out(
    make: Any, error: str
) -> None:
    task_id = await make(error).dispatch()
    worker = await work()
    assert runs == [error] * 3
    assert (worker.stats.retried, worker.stats.dead_lettered) == (2, 1)
    letter = await dead_letter(task_id)
    assert letter.failure.exception_type.endswith(ERRORS[error].__qualname__)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (fetch, "value"),
        (fetch_sync, "timeout"),
        (read, "missing"),  # dont_retry_on wins over retry_on
        (parse, "value"),
        (parse, "key"),
        (charge, "declined"),  # a PermanentError never retries
        (fetch, "declined"),
    ],
)
async def test_an_exception_not_selected_dead_letters_at_once_with_its_error(
    make: Any, error: str
) -> None:
    task_id = await make(error).dispatch()
    worker = await work()
    assert runs == [error]
    assert (worker.stats.retried, worker.stats.dead_lettered) == (0, 1)
    letter = await dead_letter(task_id)
    cls = ERRORS[error]
    assert letter.failure.exception_type == f"{cls.__module__}.{cls.__qualname__}"
    assert error in letter.failure.message
    assert letter.attempts == 1


async def test_class_attributes_filter_and_failed_runs_once() -> None:
    await Upload("connection").dispatch()
    await Upload("value").dispatch()
    worker = await work()
    assert sorted(runs) == ["connection"] * 3 + ["value"]
    assert (worker.stats.retried, worker.stats.dead_lettered) == (2, 2)
    assert sorted(failed_hooks) == ["ConnectionError", "ValueError"]


async def test_a_sync_class_tasks_dont_retry_on() -> None:
    await SyncUpload("value").dispatch()
    await SyncUpload("key").dispatch()
    await work()
    assert sorted(runs) == ["key"] * 3 + ["value"]


async def test_an_overridden_should_retry_wins_over_the_class_filters() -> None:
    await Stubborn("value").dispatch()  # not in retry_on, but should_retry says yes
    await work()
    assert runs == ["value"] * 3


async def test_an_override_calling_super_keeps_the_filters() -> None:
    await Widened("key").dispatch()  # added by the override
    await Widened("connection").dispatch()  # selected by the inherited retry_on
    await Widened("value").dispatch()  # neither
    await work()
    assert sorted(runs) == ["connection"] * 3 + ["key"] * 3 + ["value"]


async def test_should_retry_cannot_retry_a_permanent_error() -> None:
    await Stubborn("declined").dispatch()
    await work()
    assert runs == ["declined"]


@task(queue=QUEUE, max_attempts=3, retry_delay=0, timeout=0.2, retry_on=ConnectionError)
async def hangs() -> None:
    runs.append("hangs")
    await asyncio.sleep(30)


async def test_the_filters_see_a_timeout_as_task_timeout_error() -> None:
    task_id = await hangs().dispatch()
    await work()
    assert runs == ["hangs"]  # TaskTimeoutError is not a ConnectionError
    letter = await dead_letter(task_id)
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"
