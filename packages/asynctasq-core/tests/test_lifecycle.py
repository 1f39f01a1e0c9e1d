"""The task lifecycle on the in-memory driver: status, cancellation, progress, workers, events."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest import mock

import orjson
import pytest

import asynctasq
from asynctasq import CancelOutcome, TaskState, current_task, task
from asynctasq.config import set_global_config
from asynctasq.core.task import Task
from asynctasq.drivers.base import StatusWrite
from asynctasq.drivers.connections import get_driver
from asynctasq.lifecycle import control
from asynctasq.lifecycle.events import Event, EventType
from asynctasq.testing import MemoryDriver
from asynctasq.testing.crash import wait_until
from asynctasq.worker import Worker

seen: list[Any] = []
gate = asyncio.Event()


@pytest.fixture(autouse=True)
def _reset() -> None:
    seen.clear()


@task(queue="lc", track=True, max_attempts=1)
async def tracked_add(a: int, b: int) -> int:
    seen.append(("add", a + b))
    return a + b


@task(queue="lc", track=True, keep_result=60, max_attempts=1)
async def tracked_kept(a: int) -> int:
    return a


@task(queue="lc", max_attempts=1)
async def untracked() -> None:
    seen.append("untracked")


@task(queue="lc", track=True, max_attempts=2, retry_delay=0)
async def fails_once(key: str) -> str:
    seen.append(key)
    if seen.count(key) == 1:
        raise ConnectionError("first run fails")
    return "ok"


@task(queue="lc", track=True, max_attempts=1)
async def always_fails() -> None:
    raise ValueError("broken input")


@task(queue="lc", track=True, max_attempts=3, retry_delay=0)
async def waits(key: str, seconds: float = 30) -> str:
    seen.append(("start", key))
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        seen.append(("cancelled", key))
        raise
    seen.append(("done", key))
    return key


@task(queue="lc", track=True, max_attempts=3)
def thread_polls(key: str) -> str:
    seen.append(("start", key))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if current_task().cancel_requested:
            seen.append(("saw flag", key))
            raise RuntimeError("stopping: cancelled")
        time.sleep(0.01)
    return key


@task(queue="lc", track=True, max_attempts=1)
async def reports(steps: int) -> None:
    for i in range(steps):
        await current_task().progress((i + 1) / steps, f"step {i + 1}")
        await asyncio.sleep(0)
    await asyncio.sleep(0.7)  # past the progress interval: the last report is written


class Resize(Task[int]):
    queue = "lc"
    track = True
    max_retries = 1

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = n

    async def handle(self) -> int:
        await self.progress(0.5, "half way")
        await asyncio.sleep(0.7)
        return self.n

    async def failed(self, exception: Exception) -> None:
        seen.append(("failed hook", type(exception).__name__))


class CancelledClassTask(Task[None]):
    queue = "lc"
    track = True

    async def handle(self) -> None:
        seen.append("class start")
        await asyncio.sleep(30)

    async def failed(self, exception: Exception) -> None:
        seen.append(("failed hook", type(exception).__name__))


class _PlainDriver:
    """A driver with only the base operations (no lifecycle capabilities)."""

    def __init__(self) -> None:
        self.inner = MemoryDriver()
        self.queued: list[Any] = []

    async def enqueue(self, message: Any) -> None:
        self.queued.append(message)

    def __getattr__(self, name: str) -> Any:
        if name in ("write_statuses", "read_status", "list_statuses"):
            raise AttributeError(name)
        return getattr(self.inner, name)


_PLAIN = _PlainDriver()


class OnAPlainDriver(Task[None]):
    queue = "lc"
    track = True
    _driver_override = _PLAIN  # type: ignore[assignment]

    async def handle(self) -> None: ...


# -- helpers -----------------------------------------------------------------------------------


async def until(check: Callable[[], Any], within: float = 10.0) -> None:
    await wait_until(check, within, "the condition")


async def run_until(check: Callable[[Worker], Any], driver: Any = None) -> Worker:
    """Run a worker on queue "lc" (of `driver`, else the configured one) until `check` of it
    holds; stopped after."""
    w = Worker(
        driver or await get_driver(), queues=["lc"], poll_wait=0.05, install_signal_handlers=False
    )
    runner = asyncio.create_task(w.run())
    try:
        await until(lambda: check(w))
    finally:
        w.request_stop()
        await runner
    return w


async def state_of(task_id: str) -> TaskState | None:
    found = await asynctasq.status(task_id)
    return None if found is None else found.state


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker(
        await get_driver(),
        queues=["lc"],
        concurrency=200,
        poll_wait=0.05,
        install_signal_handlers=False,
        heartbeat_interval=0.2,
    )
    runner = asyncio.create_task(w.run())
    yield w
    w.request_stop()
    await asyncio.wait_for(runner, 30)


# -- status ------------------------------------------------------------------------------------


async def test_a_tracked_task_goes_from_queued_to_running_to_succeeded() -> None:
    task_id = await waits("s1", 0.5).dispatch()
    queued = await task_id.status()
    assert queued is not None and queued.state == TaskState.QUEUED
    assert queued.task_name == waits.name and queued.queue == "lc" and queued.attempts == 0
    assert queued.enqueued_at is not None and queued.worker is None
    delayed = await waits("s2").delay(60).dispatch()
    assert await state_of(delayed) == TaskState.SCHEDULED
    w = Worker(await get_driver(), queues=["lc"], poll_wait=0.05, install_signal_handlers=False)
    runner = asyncio.create_task(w.run())
    try:
        await until(lambda: state_of(task_id), 5)
        await until(lambda: ("start", "s1") in seen)
        await until(lambda: _is(task_id, TaskState.RUNNING))  # written within 50 ms
        running = await task_id.status()
        assert running is not None and running.state == TaskState.RUNNING
        assert running.worker == w.worker_id and running.attempts == 1
        assert running.started_at is not None and running.finished_at is None
        await until(lambda: _is(task_id, TaskState.SUCCEEDED))
    finally:
        w.request_stop()
        await runner
    done = await asynctasq.status(task_id)
    assert done is not None and done.finished and done.finished_at is not None


async def _is(task_id: str, state: TaskState) -> bool:
    return await state_of(task_id) == state


async def _is_one_of(task_id: str, states: tuple[TaskState, ...]) -> bool:
    return await state_of(task_id) in states


async def test_retrying_failed_and_untracked(worker: Worker) -> None:
    retried = await fails_once("r1").dispatch()
    failed = await always_fails().dispatch()
    plain = await untracked().dispatch()
    await until(lambda: _is(retried, TaskState.SUCCEEDED))
    await until(lambda: _is(failed, TaskState.FAILED))
    [bad] = [
        s for s in await asynctasq.list_tasks(queue="lc", state="failed") if s.task_id == failed
    ]
    assert bad.error_type == "builtins.ValueError" and bad.error_message == "broken input"
    good = await asynctasq.status(retried)
    assert good is not None and good.attempts == 2
    await until(lambda: "untracked" in seen)
    assert await plain.status() is None  # not tracked: nothing is known, never a guess
    assert await asynctasq.status("no-such-task") is None


async def test_the_global_default_tracks_every_task() -> None:
    set_global_config(task_defaults={"track": True})
    task_id = await untracked().dispatch()
    assert await state_of(task_id) == TaskState.QUEUED
    await run_until(lambda _: _is(task_id, TaskState.SUCCEEDED))


async def test_a_driver_that_cannot_track_is_refused_at_dispatch() -> None:
    with pytest.raises(
        TypeError, match=r"cannot track task status; use a driver that can \(.*postgres.*redis"
    ):
        await OnAPlainDriver().dispatch()
    assert _PLAIN.queued == []


# -- cancellation ------------------------------------------------------------------------------


async def test_a_cancelled_queued_task_never_runs() -> None:
    queued = await waits("c1").dispatch()
    delayed = await waits("c2").delay(0.3).dispatch()
    assert await queued.cancel() == CancelOutcome.REQUESTED
    assert await asynctasq.cancel(delayed) == CancelOutcome.REQUESTED
    assert await state_of(queued) == TaskState.CANCELLED
    await run_until(lambda w: w.stats.cancelled == 2)
    assert seen == []
    driver = await get_driver()
    [stats] = await driver.stats(["lc"])
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)


async def test_cancelling_one_of_100_running_tasks_leaves_the_others(worker: Worker) -> None:
    ids = [await waits(f"k{n}", 1.0).dispatch() for n in range(100)]
    await until(lambda: sum(1 for s in seen if s[0] == "start") == 100)
    victim = ids[37]
    assert await victim.cancel() == CancelOutcome.REQUESTED
    await until(lambda: _is(victim, TaskState.CANCELLED), 5)
    await until(lambda: sum(1 for s in seen if s[0] == "done") == 99)
    assert ("cancelled", "k37") in seen and ("done", "k37") not in seen
    for other in ids[:37] + ids[38:]:
        await until(lambda o=other: _is(o, TaskState.SUCCEEDED))
    assert worker.stats.cancelled == 1 and worker.stats.retried == 0


@task(queue="lc", track=True, max_attempts=3)
async def swallows_cancel(key: str) -> str:
    seen.append(("start", key))
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        seen.append(("caught", key))
    return key


async def test_a_task_that_catches_its_cancel_and_returns_is_cancelled(worker: Worker) -> None:
    """Cut short by the request, whatever it returned: cancelled, not a success."""
    task_id = await swallows_cancel("sc").dispatch()
    await until(lambda: _is(task_id, TaskState.RUNNING))
    await task_id.cancel()
    await until(lambda: ("caught", "sc") in seen, 5)
    finished = (TaskState.CANCELLED, TaskState.SUCCEEDED)
    await until(lambda: _is_one_of(task_id, finished), 5)
    assert await state_of(task_id) == TaskState.CANCELLED
    assert (worker.stats.cancelled, worker.stats.succeeded) == (1, 0)
    [stats] = await (await get_driver()).stats(["lc"])
    assert (stats.ready, stats.in_flight) == (0, 0)


@task(queue="lc", track=True, rate_limit="1/s", max_attempts=1)
async def rated(key: str) -> str:
    seen.append(("start", key))
    return key


async def test_a_task_cancelled_while_it_waits_for_its_rate_limit_never_runs(
    worker: Worker,
) -> None:
    """The second of two 1/s tasks waits in the worker for its start, a second after the
    first's: a cancel then must stop it as it would a queued one."""
    await rated("first").dispatch()
    second = await rated("second").dispatch()
    await until(lambda: ("start", "first") in seen)
    await asyncio.sleep(0.2)
    assert await second.cancel() == CancelOutcome.REQUESTED
    await until(lambda: worker.stats.cancelled == 1)
    await asyncio.sleep(1.2)  # past the start it had reserved
    assert ("start", "second") not in seen
    assert await state_of(second) == TaskState.CANCELLED
    assert worker.stats.succeeded == 1


async def test_a_cancelled_class_task_gets_no_failed_call(worker: Worker) -> None:
    task_id = await CancelledClassTask().dispatch()
    await until(lambda: "class start" in seen)
    await task_id.cancel()
    await until(lambda: _is(task_id, TaskState.CANCELLED))
    assert not [s for s in seen if s[0] == "failed hook"]


async def test_a_thread_task_sees_the_cooperative_flag(worker: Worker) -> None:
    task_id = await thread_polls("t1").dispatch()
    await until(lambda: _is(task_id, TaskState.RUNNING))
    await task_id.cancel()
    await until(lambda: ("saw flag", "t1") in seen)
    await until(lambda: _is(task_id, TaskState.CANCELLED))
    assert worker.stats.retried == 0


async def test_cancelling_a_finished_task_says_so(worker: Worker) -> None:
    task_id = await tracked_add(2, 3).dispatch()
    await until(lambda: _is(task_id, TaskState.SUCCEEDED))
    assert await task_id.cancel() == CancelOutcome.ALREADY_FINISHED
    assert await state_of(task_id) == TaskState.SUCCEEDED


async def test_a_worker_started_later_still_skips_a_cancelled_task() -> None:
    task_id = await waits("late").dispatch()
    await task_id.cancel()
    await run_until(lambda w: w.stats.cancelled == 1)
    assert seen == []


async def test_an_event_log_without_max_entry_still_serves_cancels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A third-party driver's event log written before `max_entry` existed: the worker reads
    cancels without it (and drops oversized entries itself) instead of failing on it."""
    from asynctasq.worker import lifecycle

    driver = await get_driver()
    plain = type(driver).read_log

    async def read_log(
        self: Any, log: str, cursor: str | None, *, wait: float, limit: int = 1000
    ) -> tuple[list[bytes], str]:
        return await plain(self, log, cursor, wait=wait, limit=limit)

    monkeypatch.setattr(type(driver), "read_log", read_log)
    monkeypatch.setattr(lifecycle, "_PASSES_MAX_ENTRY", {}, raising=False)  # per type: fresh
    task_id = await waits("old-log").dispatch()
    await task_id.cancel()
    await run_until(lambda w: w.stats.cancelled == 1, driver)
    assert seen == []


# -- progress ------------------------------------------------------------------------------------


@task(queue="lc", track=True, max_attempts=2, retry_delay=30, dont_retry_on=(ValueError,))
async def reports_then_ends(how: str) -> None:
    await current_task().progress(0.3, "first")
    await asyncio.sleep(0.6)  # past the progress timer: "first" is written
    await current_task().progress(0.9, "almost done")  # still waiting for the timer
    if how == "fails":
        raise ValueError("broken input")  # for good: not retried
    if how == "retries":
        raise ConnectionError("a blip")
    seen.append(("waiting", how))
    await asyncio.sleep(30)


@pytest.mark.parametrize(
    ("how", "state"),
    [
        ("fails", TaskState.FAILED),
        ("retries", TaskState.RETRYING),
        ("is cancelled", TaskState.CANCELLED),
    ],
)
async def test_a_run_that_does_not_succeed_keeps_its_last_progress(
    worker: Worker, how: str, state: TaskState
) -> None:
    task_id = await reports_then_ends(how).dispatch()
    if how == "is cancelled":
        await until(lambda: ("waiting", how) in seen)
        await task_id.cancel()
    await until(lambda: _is(task_id, state))
    status = await asynctasq.status(task_id)
    assert status is not None
    assert (status.progress, status.progress_message) == (0.9, "almost done")


async def test_progress_is_reported_and_rate_limited(worker: Worker) -> None:
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    writes: list[StatusWrite] = []
    original = driver.write_statuses

    async def counting(batch: Any) -> None:
        writes.extend(batch)
        await original(batch)

    driver.write_statuses = counting  # type: ignore[method-assign]
    try:
        task_id = await reports(1000).dispatch()
        await until(lambda: _is(task_id, TaskState.SUCCEEDED))
    finally:
        del driver.write_statuses
    mine = [w for w in writes if w.task_id == task_id]
    # queued, running, a few progress writes (not 1000), succeeded
    assert 3 <= len(mine) <= 8, len(mine)
    done = await task_id.status()
    assert done is not None and done.progress == 1.0 and done.progress_message == "step 1000"


async def test_class_tasks_report_progress_with_self_progress(worker: Worker) -> None:
    task_id = await Resize(4).dispatch()

    async def half_way() -> bool:
        found = await task_id.status()
        return found is not None and found.progress == 0.5

    await until(half_way)
    running = await task_id.status()
    assert running is not None and running.state == TaskState.RUNNING
    assert running.progress_message == "half way"


def test_progress_outside_a_task_and_bad_values_are_errors() -> None:
    with pytest.raises(RuntimeError, match="only available inside a task"):
        current_task()
    context = asynctasq.TaskContext("i", "n", "q", 0)
    for bad in (-0.1, 1.5, float("nan"), "half", True):
        with pytest.raises(ValueError, match="progress must be a number from 0 to 1"):
            context.report_progress(bad)  # type: ignore[arg-type]


# -- workers and events --------------------------------------------------------------------------


async def test_live_workers_are_listed_with_what_they_run(worker: Worker) -> None:
    task_id = await waits("w1", 1.0).dispatch()
    await until(lambda: ("start", "w1") in seen)

    async def listed() -> bool:
        return any(task_id in w.running for w in await asynctasq.list_workers())

    await until(listed)
    [me] = [w for w in await asynctasq.list_workers() if w.worker_id == worker.worker_id]
    assert me.queues == ("lc",) and me.concurrency == 200 and me.pid > 0
    assert me.version == asynctasq.__version__


async def test_a_stopped_worker_leaves_the_registry() -> None:
    w = Worker(await get_driver(), queues=["lc"], poll_wait=0.05, install_signal_handlers=False)
    runner = asyncio.create_task(w.run())

    async def listed() -> bool:
        return any(x.worker_id == w.worker_id for x in await asynctasq.list_workers())

    await until(listed)
    w.request_stop()
    await runner
    assert not await listed()


async def test_one_task_life_as_events_in_order() -> None:
    set_global_config(events={"enabled": True})
    got: list[Event] = []
    started = threading.Event()

    async def listen() -> None:
        started.set()
        async for event in asynctasq.events.subscribe(wait=0.2):
            got.append(event)  # noqa: PERF401 - appended as they arrive, read meanwhile

    listener = asyncio.create_task(listen())
    await until(started.is_set)
    await asyncio.sleep(0.05)
    w = Worker(
        await get_driver(),
        queues=["lc"],
        poll_wait=0.05,
        install_signal_handlers=False,
        heartbeat_interval=0.2,
    )
    runner = asyncio.create_task(w.run())
    try:
        task_id = await reports(3).dispatch()
        await until(lambda: any(e.type == EventType.TASK_SUCCEEDED for e in got))
        await until(lambda: any(e.type == EventType.WORKER_HEARTBEAT for e in got))
    finally:
        w.request_stop()
        await runner
    await until(lambda: any(e.type == EventType.WORKER_OFFLINE for e in got))
    listener.cancel()
    mine = [e.type for e in got if e.task_id == task_id]
    assert mine[0] == EventType.TASK_ENQUEUED and mine[1] == EventType.TASK_STARTED
    assert mine[-1] == EventType.TASK_SUCCEEDED
    assert set(mine[2:-1]) == {EventType.TASK_PROGRESS}
    kinds = [e.type for e in got]
    assert kinds.index(EventType.WORKER_ONLINE) < kinds.index(EventType.TASK_STARTED)
    succeeded = next(e for e in got if e.type == EventType.TASK_SUCCEEDED)
    assert succeeded.worker == w.worker_id and succeeded.data["duration"] > 0


async def test_cancelling_a_process_task_stops_its_child(tmp_path: Any) -> None:
    import os
    import sys
    from pathlib import Path

    tasks_dir = str(Path(__file__).parent / "tasks_pkg")
    sys.path.insert(0, tasks_dir)
    try:
        import core_test_tasks

        pid_file = tmp_path / "pid"
        task_id = await core_test_tasks.sleep_in_child(str(pid_file)).dispatch()
        w = Worker(
            await get_driver(),
            queues=["lc"],
            poll_wait=0.05,
            install_signal_handlers=False,
            allowed_roots=[tasks_dir],
            process_pool_size=1,
        )
        runner = asyncio.create_task(w.run())
        try:
            await until(lambda: pid_file.exists() and pid_file.read_text(), 30)
            child = int(pid_file.read_text())
            await task_id.cancel()
            await until(lambda: _is(task_id, TaskState.CANCELLED))

            def gone() -> bool:
                try:
                    os.kill(child, 0)
                except ProcessLookupError:
                    return True
                return False

            await until(gone)
        finally:
            w.request_stop()
            await runner
    finally:
        sys.path.remove(tasks_dir)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"x","s":"running","t":"m:t","q":"q","p":"abc"}',
        b'{"id":"x","s":"running","t":"m:t","q":"q","p":1e308}',
        b'{"id":"x","s":"running","t":"m:t","q":"q","et":["x"]}',
        b'{"id":"x","s":"nope","t":"m:t","q":"q"}',
        b'{"id":"x","s":"running","t":"m:t","q":"q","e":-5e300}',
        b'{"id":"x","s":"running","t":"m:t","q":"q","n":"3"}',
        b"[1,2]",
        b"\xff",
    ],
)
def test_a_forged_status_record_is_no_record(raw: bytes) -> None:
    assert asynctasq.TaskStatus.decode(raw) is None


def test_a_forged_status_record_costs_bounded_work() -> None:
    # Listing tasks reads every record of a page, on every refresh of a dashboard tab.
    base = {"id": "x", "s": "failed", "t": "m:t", "q": "q"}
    huge = orjson.dumps({**base, "em": "e" * (1 << 20)})
    assert asynctasq.TaskStatus.decode(huge) is None
    status = asynctasq.TaskStatus.decode(orjson.dumps({**base, "em": "e" * 10_000}))
    assert status is not None and status.error_message is not None
    assert len(status.error_message) <= 2003  # as a worker writes it: cut, with "..."


@pytest.mark.parametrize(
    "raw",
    [b"[1,2]", b'{"y":"task-started","at":"now"}', b'{"y":"task-started","at":1,"id":[1]}'],
)
def test_a_forged_event_or_worker_record_is_skipped(raw: bytes) -> None:
    assert Event.decode(raw) is None
    assert asynctasq.WorkerInfo.decode(raw) is None


async def test_once_a_result_can_be_read_the_status_says_succeeded(worker: Worker) -> None:
    """Status records are written in batches; a tracked task's result was readable some
    50 ms before its record left "queued"."""
    for n in range(5):
        handle = await tracked_kept(n).dispatch()
        assert await handle.result(timeout=10) == n
        assert (await handle.status()).state == TaskState.SUCCEEDED  # type: ignore[union-attr]


async def test_a_slow_status_store_delays_a_kept_result_by_a_second_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The result waits for its ``succeeded`` record, but not for a store that hangs."""
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    write = driver.write_statuses

    async def slow(writes: Any) -> None:
        await asyncio.sleep(3)
        await write(writes)

    monkeypatch.setattr(driver, "write_statuses", slow)
    w = Worker(driver, queues=["lc"], poll_wait=0.05, install_signal_handlers=False)
    runner = asyncio.create_task(w.run())
    try:
        handle = await tracked_kept(7).dispatch()
        began = time.monotonic()
        assert await handle.result(timeout=10) == 7
        assert time.monotonic() - began < 1.8  # the write takes 3 s
    finally:
        w.request_stop()
        await asyncio.wait_for(runner, 30)


async def test_a_forged_event_too_deep_or_too_large_is_skipped_and_the_stream_goes_on() -> None:
    """One event nested 1,000 deep (decoding takes it, ``json.dumps`` does not) stopped
    ``asynctasq events`` for good; a subscriber now skips it and sees the next event."""
    deep = b'{"y":"task-failed","at":1,"d":{"k":' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}}"
    huge = orjson.dumps({"y": "task-failed", "at": 1, "d": {"m": "x" * (5 << 20)}})
    # A heartbeat of a worker running 7,000 tasks (273 KB) is an event.
    running = [{"id": f"{n:036d}", "t": "m:t", "q": "q"} for n in range(7000)]
    big_beat = orjson.dumps({"y": "worker-heartbeat", "at": 1, "d": {"info": {"r": running}}})
    assert len(big_beat) > 256 << 10 and Event.decode(big_beat) is not None
    assert Event.decode(deep) is None and Event.decode(huge) is None
    beat = {"y": "worker-heartbeat", "at": 2, "w": "w1", "d": {"info": {"running": [{"id": "a"}]}}}
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    await driver.append_log("events", [deep, huge, orjson.dumps(beat)], 60)
    stream = asynctasq.events.subscribe(driver=driver, from_start=True, wait=0.05)
    event = await asyncio.wait_for(anext(stream), 5)
    assert (event.type, event.worker) == (EventType.WORKER_HEARTBEAT, "w1")
    assert orjson.loads(orjson.dumps(event.as_dict()))["info"] == {"running": [{"id": "a"}]}
    await stream.aclose()  # type: ignore[attr-defined]


def test_a_worker_record_of_any_size_reads_back_bounded() -> None:
    """A forged record with a 2 MB host name printed 8.5 MB in ``asynctasq workers``."""
    from asynctasq.lifecycle.workers import MAX_NAME, MAX_RECORD

    doc = {
        "worker_id": "w" * 100_000,
        "host": "h" * 2_000_000,
        "pid": 1,
        "queues": ["q" * 10_000, "ok"],
        "concurrency": 1,
        "version": "v" * 5_000,
        "started_at": 1.0,
        "heartbeat_at": 2.0,
        "running": ["r" * 10_000],
    }
    info = asynctasq.WorkerInfo.decode(orjson.dumps(doc))
    assert info is not None
    assert all(
        len(text) <= MAX_NAME
        for text in (info.worker_id, info.host, info.version, *info.queues, *info.running)
    )
    assert info.queues[1] == "ok" and info.host.startswith("hhh")
    doc["host"] = "h" * (MAX_RECORD + 1)
    assert asynctasq.WorkerInfo.decode(orjson.dumps(doc)) is None


async def test_forged_records_do_not_break_listing_or_the_cancel_watcher(worker: Worker) -> None:
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    await driver.write_statuses([StatusWrite("forged", "lc", "running", b'{"p":"x"}', 60)])
    await driver.append_log("cancels", [b"\xff\xfe" * 100, b"x" * 10_000], 60)
    await driver.heartbeat_worker("forged", b"[1]", 60)
    task_id = await tracked_add(1, 1).dispatch()
    await until(lambda: _is(task_id, TaskState.SUCCEEDED))
    assert all(s.task_id != "forged" for s in await asynctasq.list_tasks(queue="lc"))
    assert all(w.worker_id != "forged" for w in await asynctasq.list_workers())


async def test_a_process_task_may_report_progress() -> None:
    import sys
    from pathlib import Path

    tasks_dir = str(Path(__file__).parent / "tasks_pkg")
    sys.path.insert(0, tasks_dir)
    try:
        import core_test_tasks

        driver = await get_driver()
        await core_test_tasks.reports_from_a_child().dispatch()
        w = Worker(
            driver,
            queues=["lc"],
            poll_wait=0.05,
            install_signal_handlers=False,
            allowed_roots=[tasks_dir],
            process_pool_size=1,
        )
        runner = asyncio.create_task(w.run())
        try:
            await until(lambda: w.stats.succeeded + w.stats.dead_lettered + w.stats.retried, 30)
        finally:
            w.request_stop()
            await runner
        assert w.stats.succeeded == 1, w.stats
    finally:
        sys.path.remove(tasks_dir)


@task(queue="lc", track=True, max_attempts=3, retry_delay=0.5)
async def fails_then_waits(key: str) -> None:
    seen.append(key)
    raise ConnectionError("the first run fails")


async def test_a_task_cancelled_while_waiting_to_retry_keeps_its_runs(worker: Worker) -> None:
    task_id = await fails_then_waits("r1").dispatch()
    await wait_until(lambda: _is(task_id, TaskState.RETRYING), 10, "the retrying record")
    found = await asynctasq.status(task_id)
    assert found is not None and found.attempts == 1
    assert found.error_type == "builtins.ConnectionError"  # named as a failed task's error
    assert await task_id.cancel() == CancelOutcome.REQUESTED
    await until(lambda: worker.stats.cancelled == 1)  # the worker took it back and settled it
    await asyncio.sleep(0.5)  # and wrote its record
    found = await asynctasq.status(task_id)
    assert found is not None and (found.state, found.attempts) == (TaskState.CANCELLED, 1)
    assert seen == ["r1"]


async def test_a_retried_dead_letter_reads_queued_until_a_worker_takes_it() -> None:
    task_id = await always_fails().dispatch()
    driver = await get_driver()
    w = Worker(driver, queues=["lc"], poll_wait=0.05, install_signal_handlers=False)
    runner = asyncio.create_task(w.run())
    try:
        await wait_until(lambda: _is(task_id, TaskState.FAILED), 10, "the failed record")
    finally:
        w.request_stop()
        await runner
    assert await control.retry_dead_letters(driver, task_ids=[task_id, "not-a-dead-letter"]) == 1
    found = await asynctasq.status(task_id)
    assert found is not None
    assert (found.state, found.attempts, found.error_type, found.finished_at) == (
        TaskState.QUEUED, 0, None, None
    )  # fmt: skip
    w = Worker(driver, queues=["lc"], poll_wait=0.05, install_signal_handlers=False)
    runner = asyncio.create_task(w.run())  # a worker takes it: its own records follow
    try:
        await until(lambda: w.stats.dead_lettered == 1)
        await wait_until(lambda: _is(task_id, TaskState.FAILED), 10, "the failed record")
    finally:
        w.request_stop()
        await runner
    found = await asynctasq.status(task_id)
    assert found is not None and found.attempts == 1


async def _three_dead_letters() -> list[str]:
    """Three tracked tasks of queue ``lc`` that failed for good; their ids."""
    ids = [await always_fails().dispatch() for _ in range(3)]
    w = Worker(await get_driver(), queues=["lc"], poll_wait=0.05, install_signal_handlers=False)
    runner = asyncio.create_task(w.run())
    try:
        for task_id in ids:
            await wait_until(lambda t=task_id: _is(t, TaskState.FAILED), 10, "failed records")
    finally:
        w.request_stop()
        await runner
    return ids


async def test_retrying_a_whole_queue_of_dead_letters_rewrites_their_records() -> None:
    """As the dashboard's "retry all" of a queue does: no ids given, every tracked task of
    the queue reads queued again, up to a bound; all of them move."""
    ids = await _three_dead_letters()
    driver = await get_driver()
    assert await control.retry_dead_letters(driver, queue="lc") == 3
    assert [await state_of(t) for t in ids] == [TaskState.QUEUED] * 3
    assert await driver.list_dead_letters(queue="lc") == []
    assert (await driver.stats(["lc"]))[0].ready == 3


async def test_a_bounded_number_of_records_is_rewritten_and_every_letter_moves() -> None:
    ids = await _three_dead_letters()
    driver = await get_driver()
    with mock.patch.object(control, "MAX_REQUEUED_RECORDS", 2):
        assert await control.retry_dead_letters(driver, queue="lc") == 3
    states = [await state_of(t) for t in ids]
    assert sorted(states) == sorted([TaskState.QUEUED, TaskState.QUEUED, TaskState.FAILED])
    assert (await driver.stats(["lc"]))[0].ready == 3


async def test_cancel_refuses_what_is_not_a_task_id() -> None:
    with pytest.raises(ValueError, match="task_id must be a UUID string"):
        await asynctasq.cancel("27ef2ad8-d2d2-4611-986c")  # a truncated copy


async def test_cancel_reads_an_id_in_capitals_as_the_task_it_names(worker: Worker) -> None:
    task_id = await waits("caps", 30).dispatch()
    await until(lambda: _is(task_id, TaskState.RUNNING))
    await asynctasq.cancel(task_id.upper())
    await until(lambda: _is(task_id, TaskState.CANCELLED), 5)


async def test_cancel_takes_a_uuid_object_too() -> None:
    assert await asynctasq.cancel(uuid.uuid4()) == CancelOutcome.REQUESTED  # type: ignore[arg-type]


async def test_start_up_reads_every_cancel_past_entries_too_large_to_take() -> None:
    """Entries passed over count toward a page without coming back: one oversized entry in
    the first page stopped the start-up read there, and a task cancelled while queued could
    run before the cancel loop caught up."""
    from asynctasq.worker.lifecycle import CANCELS_PER_READ, MAX_CANCEL, Lifecycle

    driver = MemoryDriver(namespace="cancels-past-large")
    small = [f"t{n}".encode() for n in range(CANCELS_PER_READ - 1)]
    await driver.append_log("cancels", [*small, b"x" * (MAX_CANCEL + 1), b"victim"], 60)
    lifecycle = Lifecycle(
        driver,
        worker_id="w",
        describe=lambda: None,  # type: ignore[arg-type,return-value]
        on_cancel=lambda _: None,
        events_on=False,
        heartbeat_interval=60,
    )
    await lifecycle.start()
    try:
        assert lifecycle.is_cancelled("t0") and lifecycle.is_cancelled("victim")
    finally:
        await lifecycle.stop()
