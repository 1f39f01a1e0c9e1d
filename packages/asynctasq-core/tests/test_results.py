"""Results: tasks that keep their return value, awaited by id, through a real worker."""

from __future__ import annotations

import asyncio
import pickle
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

import asynctasq
from asynctasq import TaskId, task
from asynctasq.core.results import cannot_keep, keeps_results
from asynctasq.core.task import Task
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import ResultNotKeptError, ResultTimeoutError, TaskFailedError
from asynctasq.serializer import from_wire, to_wire
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

TASKS_DIR = str(Path(__file__).parent)


@task(queue="r", keep_result=True)
async def total(values: list[Decimal]) -> dict[str, Any]:
    return {"sum": sum(values), "at": datetime(2026, 1, 2, tzinfo=UTC)}


@task(queue="r", keep_result=30, max_attempts=1)
async def doomed() -> None:
    raise ValueError("no luck")


@task(queue="r", keep_result=True)
async def unserializable() -> object:
    return object()


@task(queue="r")
async def forgetful() -> int:
    return 1


class Greeting(Task[str]):
    queue = "r"
    keep_result = 60

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    async def handle(self) -> str:
        return f"hello {self.name}"


@pytest.fixture
async def worker() -> Any:
    worker = Worker(
        await get_driver(),
        queues=["r"],
        install_signal_handlers=False,
        poll_wait=0.1,
        allowed_roots=[TASKS_DIR],
    )
    runner = asyncio.create_task(worker.run())
    yield worker
    worker.request_stop()
    await asyncio.wait_for(runner, 30)


async def test_a_kept_result_is_awaited_by_the_dispatcher(worker: Worker) -> None:
    task_id = await total([Decimal("1.5"), Decimal("2")]).dispatch()
    assert isinstance(task_id, str)
    assert await task_id.result(timeout=10) == {
        "sum": Decimal("3.5"),
        "at": datetime(2026, 1, 2, tzinfo=UTC),
    }
    # by id alone, later, from anywhere
    assert (await asynctasq.result(str(task_id), timeout=1))["sum"] == Decimal("3.5")


async def test_class_tasks_and_dispatch_many_keep_results(worker: Worker) -> None:
    ids = await asynctasq.dispatch_many([Greeting("ada"), Greeting("bob")])
    assert [await i.result(timeout=10) for i in ids] == ["hello ada", "hello bob"]


async def test_a_task_that_fails_for_good_raises_at_the_waiter(worker: Worker) -> None:
    task_id = await doomed().dispatch()
    with pytest.raises(TaskFailedError, match="no luck") as caught:
        await task_id.result(timeout=10)
    assert caught.value.exception_type == "builtins.ValueError"


async def test_a_result_that_cannot_be_kept_says_why(worker: Worker) -> None:
    task_id = await unserializable().dispatch()
    with pytest.raises(TaskFailedError, match="object") as caught:
        await task_id.result(timeout=10)
    assert caught.value.exception_type.endswith("SerializationError")


async def test_no_result_is_kept_unless_asked(worker: Worker) -> None:
    task_id = await forgetful().dispatch()
    # the task ran (so a result would have been stored by now) ...
    for _ in range(200):
        if worker.stats.succeeded:
            break
        await asyncio.sleep(0.02)
    assert worker.stats.succeeded == 1
    # ... and nothing was kept for it
    store = await get_driver()
    assert await store.fetch_result(task_id, 0) is None  # type: ignore[attr-defined]
    with pytest.raises(ResultTimeoutError, match="only with keep_result"):
        await asynctasq.result(str(task_id), timeout=0.3)  # by id alone: waited for


async def test_awaiting_a_result_the_task_does_not_keep_fails_at_once() -> None:
    """No waiting out the timeout (or for ever, without one) for what never comes; and not a
    ResultTimeoutError, which a loop that waits again would catch and spin on."""
    ids = [
        await forgetful().dispatch(),
        *await asynctasq.dispatch_many([forgetful(), Greeting("ada")]),
    ]
    for task_id in ids[:2]:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ResultNotKeptError, match="forgetful does not keep its result"):
            await task_id.result()
        assert asyncio.get_running_loop().time() - started < 1
        with pytest.raises(ResultNotKeptError, match="keep_result=True"):
            await task_id.result(timeout=30)
        assert not issubclass(ResultNotKeptError, ResultTimeoutError)
    with pytest.raises(ResultTimeoutError, match="within 0.1 s"):  # kept: waited for
        await ids[2].result(timeout=0.1)


def test_keep_result_is_checked_where_it_is_set() -> None:
    with pytest.raises(ValueError, match="keep_result"):

        @task(keep_result=-1)
        async def bad() -> None: ...

    with pytest.raises(ValueError, match="keep_result"):

        class Bad(Task[None]):
            keep_result = "forever"

            async def handle(self) -> None: ...


def test_a_driver_without_results_is_refused_by_name() -> None:
    class Plain:
        pass

    assert not keeps_results(Plain())  # type: ignore[arg-type]
    assert keeps_results(MemoryDriver())
    error = cannot_keep(Plain(), "total has keep_result")  # type: ignore[arg-type]
    assert "Plain cannot keep task results (total has keep_result)" in str(error)


def test_a_task_id_is_a_plain_string_to_everyone_else() -> None:
    task_id = TaskId("abc")
    assert task_id == "abc"
    assert f"{task_id}" == "abc"
    assert type(pickle.loads(pickle.dumps(task_id))) is str
    # as an argument (or a result) of a task it travels as the plain id
    wire = to_wire({"parent": task_id, "ids": [task_id], task_id: 1})
    assert from_wire(orjson.loads(orjson.dumps(wire))) == {
        "parent": "abc",
        "ids": ["abc"],
        "abc": 1,
    }


async def test_a_task_id_can_be_passed_to_the_next_task(worker: Worker) -> None:
    first = await total([Decimal(1)]).dispatch()
    follow = await Greeting(first).dispatch()
    assert await follow.result(timeout=10) == f"hello {first}"


class NoResults(MemoryDriver):
    """A driver without the result capability (as postgres, mysql, sqs, rabbitmq are)."""

    store_result = None  # type: ignore[assignment]
    fetch_result = None  # type: ignore[assignment]


async def test_dispatching_to_a_driver_without_results_fails_before_queueing() -> None:
    plain = NoResults()

    @task(keep_result=True, driver=plain)
    async def wants_result() -> int:
        return 1

    with pytest.raises(TypeError, match="NoResults cannot keep task results"):
        await wants_result().dispatch()
    with pytest.raises(TypeError, match="NoResults cannot keep task results"):
        await asynctasq.dispatch_many([wants_result()])
    assert await plain.dequeue(["default"], limit=5, wait=0) == []
