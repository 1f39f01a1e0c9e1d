"""Workflows on the in-memory driver with an in-process worker: ordering, results passing,
group order, chords, failure, cancellation, the handle, and the once-only queueing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import asynctasq
from asynctasq import chain, chord, group
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import ResultTimeoutError, TaskFailedError
from asynctasq.lifecycle.control import CancelOutcome
from asynctasq.worker import Worker
from asynctasq.workflows import (
    StepFailedError,
    StepState,
    WorkflowCancelledError,
    WorkflowState,
    spec,
    workflow,
)
from asynctasq.workflows.queueing import enqueue_steps, workflow_store

from . import wf_tasks as t

HERE = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    t.RUNS.clear()
    t.GATE.clear()


class _Running:
    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.runner: asyncio.Task[None] | None = None

    async def start(self) -> Worker:
        self.worker = Worker(
            await get_driver(),
            queues=["wf"],
            install_signal_handlers=False,
            poll_wait=0.05,
            allowed_roots=[HERE],
            concurrency=8,
        )
        self.runner = asyncio.create_task(self.worker.run())
        return self.worker

    async def stop(self) -> None:
        if self.worker is not None and self.runner is not None:
            self.worker.request_stop()
            await asyncio.wait_for(self.runner, 30)


@pytest.fixture
async def workers() -> AsyncIterator[_Running]:
    running = _Running()
    yield running
    await running.stop()


@pytest.fixture
async def worker(workers: _Running) -> Worker:
    return await workers.start()


def names() -> list[str]:
    return [name for name, _ in t.RUNS]


async def test_a_chain_passes_each_result_to_the_next_step(worker: Worker) -> None:
    handle = await chain(t.add(1, 2), t.double, t.label.step(prefix="n=")).dispatch()
    assert await handle.result(timeout=20) == "n=6"
    assert t.RUNS == [("add", (1, 2)), ("double", 3), ("label", 6)]
    steps = (await handle.status()).steps
    ids = [s.task_id for s in steps]
    assert len({str(uuid.UUID(str(i))) for i in ids}) == 3  # each step's own id, a UUID
    # every step's result is kept, by its id
    assert steps[1].task_id is not None
    assert await asynctasq.result(steps[1].task_id, timeout=1) == 6


async def test_a_full_call_in_a_chain_runs_after_the_previous_step_and_ignores_it(
    worker: Worker,
) -> None:
    handle = await chain(t.add(1, 1), t.Announce("done"), t.add(5, 5)).dispatch()
    assert await handle.result(timeout=20) == 10
    assert names() == ["add", "announce", "add"]


async def test_a_group_gathers_results_in_its_order_not_finishing_order(
    worker: Worker,
) -> None:
    handle = await group(t.pause(0.3 - 0.1 * i, i) for i in range(3)).dispatch()
    assert await handle.result(timeout=20) == [0, 1, 2]
    finished = [v for name, v in t.RUNS if name == "pause"]
    assert sorted(finished) == [0, 1, 2]


async def test_a_chord_calls_back_once_with_every_result_in_order(worker: Worker) -> None:
    handle = await chord(group(t.pause(0.05 * (5 - i), i) for i in range(6)), t.total).dispatch()
    assert await handle.result(timeout=20) == 15
    assert [v for name, v in t.RUNS if name == "total"] == [[0, 1, 2, 3, 4, 5]]


async def test_a_failing_step_stops_the_chain_and_names_itself(worker: Worker) -> None:
    handle = await chain(t.add(1, 1), t.boom, t.double).dispatch()
    with pytest.raises(StepFailedError) as failed:
        await handle.result(timeout=20)
    assert isinstance(failed.value, TaskFailedError)
    assert failed.value.step == 1 and failed.value.workflow_id == handle.id
    assert "step 1" in str(failed.value) and "boom at 2" in str(failed.value)
    assert failed.value.task_name.endswith("boom")
    await asyncio.sleep(0.3)  # time for a step that should not run
    assert names() == ["add", "boom"]
    status = await handle.status()
    assert status.state == WorkflowState.FAILED
    assert [s.state for s in status.steps] == [
        StepState.SUCCEEDED,
        StepState.FAILED,
        StepState.WAITING,
    ]
    # the dead letter says which workflow it belongs to
    driver = await get_driver()
    [dead] = await driver.list_dead_letters(task_ids=[status.steps[1].task_id])
    assert handle.id in dead.failure.traceback
    assert spec.HEADER.encode() in dead.payload and handle.id.encode() in dead.payload


async def test_a_failing_chord_member_means_no_callback(worker: Worker) -> None:
    handle = await chord([t.add(1, 1), t.boom(3)], t.total).dispatch()
    with pytest.raises(StepFailedError, match="step 1"):
        await handle.result(timeout=20)
    await asyncio.sleep(0.3)
    assert "total" not in names()


async def test_cancelling_stops_the_running_step_and_queues_nothing_after(
    worker: Worker,
) -> None:
    handle = await chain(t.add(1, 1), t.hold, t.double).dispatch()
    for _ in range(400):
        if "hold" in names():
            break
        await asyncio.sleep(0.02)
    assert "hold" in names()
    assert (await handle.status()).steps[1].state == StepState.RUNNING
    assert await handle.cancel() == CancelOutcome.REQUESTED
    with pytest.raises(WorkflowCancelledError):
        await handle.result(timeout=20)
    for _ in range(200):
        if worker.stats.cancelled:
            break
        await asyncio.sleep(0.02)
    assert worker.stats.cancelled == 1
    await asyncio.sleep(0.3)
    assert names() == ["add", "hold"]
    status = await handle.status()
    assert status.state == WorkflowState.CANCELLED
    # The step that was running is cancelled too, not shown running for ever.
    assert [s.state for s in status.steps] == [
        StepState.SUCCEEDED,
        StepState.CANCELLED,
        StepState.CANCELLED,
    ]


async def test_cancelling_before_any_worker_runs_leaves_nothing_to_run(
    workers: _Running,
) -> None:
    handle = await group([t.add(1, 1), t.add(2, 2)]).dispatch()
    assert [s.state for s in (await handle.status()).steps] == [StepState.QUEUED] * 2
    assert await handle.cancel() == CancelOutcome.REQUESTED
    worker = await workers.start()
    for _ in range(200):
        if worker.stats.cancelled == 2:
            break
        await asyncio.sleep(0.02)
    assert worker.stats.cancelled == 2
    assert names() == []


async def test_cancelling_a_finished_workflow_changes_nothing(worker: Worker) -> None:
    handle = await chain(t.add(1, 1), t.double).dispatch()
    assert await handle.result(timeout=20) == 4
    assert await handle.cancel() == CancelOutcome.ALREADY_FINISHED
    assert (await handle.status()).state == WorkflowState.SUCCEEDED


async def test_the_handle_is_found_again_by_id_and_times_out(workers: _Running) -> None:
    handle = await chain(t.add(2, 3), t.double).dispatch()
    found = await workflow(handle.id)
    assert (found.kind, found.task_names) == ("chain", handle.task_names)
    with pytest.raises(ResultTimeoutError, match="step 0"):
        await found.result(timeout=0.2)  # no worker yet
    status = await found.status()
    assert status.state == WorkflowState.RUNNING
    assert [s.state for s in status.steps] == [StepState.QUEUED, StepState.WAITING]
    await workers.start()
    assert await found.result(timeout=20) == 10
    with pytest.raises(LookupError):
        await workflow("00000000-0000-0000-0000-000000000000")


async def test_asking_twice_for_a_step_runs_it_once(workers: _Running) -> None:
    """What a worker that died between queueing the next step and its ack causes: the step
    is asked for again. Unstarted, the new copy replaces the old (which is dropped unrun);
    started, nothing new is queued."""
    handle = await chain(t.add(1, 2), t.double).dispatch()
    store = workflow_store(await get_driver())
    raw = await store.fetch_result(spec.plan_key(handle.id), 0)
    assert raw is not None
    plan = spec.decode(raw)
    assert await enqueue_steps(store, handle.id, plan, [(0, None)]) == 1  # a second copy
    driver: Any = store
    assert (await driver.stats(["wf"]))[0].ready == 2
    worker = await workers.start()
    assert await handle.result(timeout=20) == 6
    assert names() == ["add", "double"]
    assert await enqueue_steps(store, handle.id, plan, [(1, 3)]) == 0  # started already
    for _ in range(100):
        if not (await driver.stats(["wf"]))[0].ready:
            break
        await asyncio.sleep(0.02)
    assert worker.stats.processed == 3  # both copies of step 0 were taken, one ran
    assert worker.stats.succeeded == 2


async def test_a_stored_step_too_deep_to_encode_again_stops_the_workflow_once(
    workers: _Running, caplog: pytest.LogCaptureFixture
) -> None:
    """A plan written behind the workflow's back with a step nested deeper than JSON encoding
    goes (decoding takes it): the workflow stops after the step that ran, which is acked
    once, not failed and run again each time its lease ends."""
    handle = await chain(t.add(2, 3), t.double).dispatch()
    store = workflow_store(await get_driver())
    raw = await store.fetch_result(spec.plan_key(handle.id), 0)
    assert raw is not None
    doc = orjson.loads(raw)
    doc["s"][1]["p"]["junk"] = "deep"
    forged = orjson.dumps(doc).replace(b'"deep"', b"[" * 300 + b"]" * 300)
    spec.decode(forged)  # accepted as a plan
    await store.store_result(spec.plan_key(handle.id), forged, 600)
    worker = await workers.start()
    driver: Any = store
    for _ in range(250):
        counts = (await driver.stats(["wf"]))[0]
        if names() and not (counts.ready or counts.in_flight):
            break
        await asyncio.sleep(0.02)
    assert names() == ["add"]
    assert (counts.ready, counts.in_flight, counts.dead) == (0, 0, 0)  # acked, nothing queued
    assert (worker.stats.succeeded, worker.stats.retried, worker.stats.dead_lettered) == (1, 0, 0)
    assert f"workflow {handle.id} cannot go on after step 0" in caplog.text


def test_steps_are_checked_where_they_are_written() -> None:
    with pytest.raises(TypeError, match=r"label.*step\(\).*unexpected keyword argument 'nope'"):
        t.label.step(nope=1)
    with pytest.raises(TypeError, match="too many positional arguments"):
        t.add.step(1, 2)
    with pytest.raises(TypeError, match="first step.*waits for a previous result"):
        chain(t.double, t.double)
    with pytest.raises(TypeError, match="task 1 of the group.*waits for a previous result"):
        group([t.add(1, 1), t.double.step()])
    with pytest.raises(TypeError, match="step 1 of the chain must be a task"):
        chain(t.add(1, 1), "double")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="do not nest"):
        chain(t.add(1, 1), group([t.add(1, 2)]))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="at least one"):
        group([])


async def test_a_step_alone_cannot_be_dispatched() -> None:
    with pytest.raises(TypeError, match="cannot be dispatched on its own"):
        await t.double.step().dispatch()
    with pytest.raises(TypeError, match="cannot be dispatched on its own"):
        await asynctasq.dispatch_many([t.add(1, 1), t.double.step()])
    driver: Any = await get_driver()
    assert (await driver.stats(["wf"]))[0].ready == 0


async def test_unique_steps_and_bad_ttls_are_refused_before_anything_is_queued() -> None:
    with pytest.raises(ValueError, match="unique task"):
        await chain(t.add(1, 1), t.only_once(2)).dispatch()
    with pytest.raises(ValueError, match="ttl"):
        await chain(t.add(1, 1)).dispatch(ttl=0)
    driver: Any = await get_driver()
    assert (await driver.stats(["wf"]))[0].ready == 0


async def test_drivers_without_results_and_claims_are_named_at_dispatch() -> None:
    class NoResults:
        """A driver that keeps no results: connect() is all dispatch asks before refusing."""

        async def connect(self) -> None: ...

    step: Any = t.add(1, 1)
    step._driver_override = NoResults()
    with pytest.raises(
        TypeError,
        match=r"NoResults cannot run workflows .*use a driver that can "
        r"\(.*redis.*\)",
    ):
        await chain(step).dispatch()


async def test_a_worker_running_no_workflow_makes_no_workflow_call(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asynctasq.workflows import runner

    def fail(*args: Any) -> Any:
        raise AssertionError("a plain task reached the workflow hooks")

    for name in ("admit", "advance", "note_failure"):
        monkeypatch.setattr(runner, name, fail)
    await t.add(1, 1).dispatch()
    await t.boom(1).dispatch()
    for _ in range(400):
        if worker.stats.processed == 2 and not worker.running:
            break
        await asyncio.sleep(0.02)
    assert (worker.stats.succeeded, worker.stats.dead_lettered) == (1, 1)
