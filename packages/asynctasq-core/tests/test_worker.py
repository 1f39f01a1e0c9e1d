"""The worker on the in-memory driver: runs, retries, dead letters, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from asynctasq import Middleware, task
from asynctasq.core.task import SyncTask, Task
from asynctasq.drivers.base import Delivery, OutgoingMessage
from asynctasq.drivers.connections import get_driver
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Job, Worker

TASKS_DIR = str(Path(__file__).parent / "tasks_pkg")
calls: dict[str, list[Any]] = {}


def record(key: str, value: Any) -> None:
    calls.setdefault(key, []).append(value)


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


async def run_worker(until: Callable[[], bool], *, timeout: float = 15.0, **kwargs: Any) -> Worker:
    """Run a worker on the configured memory driver until `until()` holds."""
    driver = await get_driver()
    kwargs.setdefault("install_signal_handlers", False)
    kwargs.setdefault("poll_wait", 0.1)
    worker = Worker(driver, **kwargs)
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    while not until():
        if runner.done():
            runner.result()
            break
        if time.monotonic() > deadline:
            worker.request_stop()
            await runner
            raise AssertionError(f"condition not reached in {timeout} s; calls={calls}")
        await asyncio.sleep(0.02)
    worker.request_stop()
    await asyncio.wait_for(runner, 30)
    return worker


# -- tasks used below --------------------------------------------------------------------------
@task(queue="w")
async def add(a: int, b: int) -> int:
    record("add", a + b)
    return a + b


@task(queue="w")
def blocking_add(a: int, b: int) -> int:
    record("blocking_add", (a + b, threading.current_thread() is threading.main_thread()))
    return a + b


@task(queue="w", max_attempts=3, retry_delay=0)
async def flaky(key: str, fail_times: int) -> str:
    record(key, "run")
    if len(calls[key]) <= fail_times:
        raise ConnectionError(f"attempt {len(calls[key])} failed")
    return "ok"


@task(queue="w", timeout=0.3, max_attempts=1)
async def too_slow() -> None:
    record("too_slow", "start")
    await asyncio.sleep(30)
    record("too_slow", "end")


class Payment(Task[dict[str, Any]]):
    queue = "w"
    max_retries = 2
    retry_delay = 0

    def __init__(self, amount: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.amount = amount

    async def handle(self) -> dict[str, Any]:
        record("payment", (self.amount, self._attempts, self._task_id, self._dispatched_at))
        if self.amount < 0:
            raise ValueError("Amount cannot be negative")
        if self.amount == 13:
            raise ConnectionError("network down")
        return {"ok": True}

    def should_retry(self, exception: Exception) -> bool:
        return not isinstance(exception, ValueError)

    async def failed(self, exception: Exception) -> None:
        record("payment_failed", type(exception).__name__)


class SyncReport(SyncTask[str]):
    queue = "w"

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = n

    def handle_sync(self) -> str:
        record("report", (self.n, threading.current_thread() is threading.main_thread()))
        return "done"


# -- tests -------------------------------------------------------------------------------------
async def test_async_and_sync_function_tasks_run() -> None:
    await add(1, 2).dispatch()
    await blocking_add(a=3, b=4).dispatch()
    await run_worker(lambda: "add" in calls and "blocking_add" in calls, queues=["w"])
    assert calls["add"] == [3]
    assert calls["blocking_add"] == [(7, False)]  # sync tasks run off the event loop thread


async def test_retries_count_attempts_and_succeed() -> None:
    await flaky("f1", 2).dispatch()
    worker = await run_worker(lambda: len(calls.get("f1", [])) == 3, queues=["w"])
    await asyncio.sleep(0.05)
    assert worker.stats.retried == 2 and worker.stats.succeeded == 1
    driver = await get_driver()
    assert await driver.list_dead_letters() == []


async def test_exhausted_retries_dead_letter_with_error_and_failed_hook_once() -> None:
    await Payment(amount=13).dispatch()
    await run_worker(lambda: "payment_failed" in calls, queues=["w"])
    assert [a for _, a, _, _ in calls["payment"]] == [0, 1]  # max_retries=2 runs in total
    assert calls["payment_failed"] == ["ConnectionError"]
    driver = await get_driver()
    [dead] = await driver.list_dead_letters(queue="w")
    assert dead.failure.exception_type == "builtins.ConnectionError"
    assert dead.failure.message == "network down"
    assert "Traceback" in dead.failure.traceback and "network down" in dead.failure.traceback
    assert dead.attempts == 2


async def test_should_retry_false_fails_at_once() -> None:
    task_id = await Payment(amount=-1).dispatch()
    await run_worker(lambda: "payment_failed" in calls, queues=["w"])
    assert len(calls["payment"]) == 1
    amount, attempts, seen_id, dispatched_at = calls["payment"][0]
    assert (amount, attempts, seen_id) == (-1, 0, task_id)
    assert dispatched_at is not None and dispatched_at.tzinfo is not None
    assert calls["payment_failed"] == ["ValueError"]


@pytest.mark.parametrize("max_attempts", [0, 1])
async def test_zero_and_one_attempts_both_run_once(max_attempts: int) -> None:
    await flaky("once", 5).max_attempts(max_attempts).dispatch()
    await run_worker(lambda: len(calls.get("once", [])) >= 1, queues=["w"])
    driver = await get_driver()
    for _ in range(20):
        if await driver.list_dead_letters(queue="w"):
            break
        await asyncio.sleep(0.05)
    assert calls["once"] == ["run"]
    assert len(await driver.list_dead_letters(queue="w")) == 1


async def test_async_timeout_cancels_the_task() -> None:
    await too_slow().dispatch()
    driver = await get_driver()

    async def dead() -> bool:
        return bool(await driver.list_dead_letters(queue="w"))

    started = time.monotonic()
    await run_worker(lambda: len(driver.dead_letters()) == 1, queues=["w"])
    assert time.monotonic() - started < 5
    assert calls["too_slow"] == ["start"]
    [letter] = await driver.list_dead_letters(queue="w")
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"


@task(queue="w", timeout=0.2, max_attempts=1)
async def blocks_the_loop() -> None:
    time.sleep(0.5)  # noqa: ASYNC251 - the mistake this test is about
    record("blocks_the_loop", "done")


async def test_an_async_task_that_blocks_past_its_timeout_is_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing can interrupt a task holding the event loop: it ends as it would, and the
    worker says why its timeout did not stop it and what to do instead."""
    await blocks_the_loop().dispatch()
    with caplog.at_level(logging.WARNING, "asynctasq.worker"):
        worker = await run_worker(lambda: "blocks_the_loop" in calls, queues=["w"])
    assert worker.stats.succeeded == 1
    [line] = [r.getMessage() for r in caplog.records if "past its timeout" in r.getMessage()]
    assert "blocks_the_loop ended past its timeout of 0.2 s, which could not stop it" in line
    assert "the event loop was held (by this task or another" in line
    assert "def task (a thread) or with process=True" in line
    caplog.clear()
    await add(1, 2).timeout(5).dispatch()  # within its timeout: nothing said
    with caplog.at_level(logging.WARNING, "asynctasq.worker"):
        await run_worker(lambda: "add" in calls, queues=["w"])
    assert "past its timeout" not in caplog.text


@task(queue="w", timeout=0.2, max_attempts=1)
async def swallows_its_timeout() -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        record("swallows_its_timeout", "caught")
    return "done anyway"


async def test_a_task_that_catches_its_timeout_and_returns_still_times_out() -> None:
    await swallows_its_timeout().dispatch()
    driver = await get_driver()
    worker = await run_worker(lambda: len(driver.dead_letters()) == 1, queues=["w"])  # type: ignore[attr-defined]
    assert calls["swallows_its_timeout"] == ["caught"]
    assert worker.stats.succeeded == 0
    [letter] = await driver.list_dead_letters(queue="w")
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"
    assert "it caught the cancellation that stops it there and returned" in letter.failure.message


async def test_class_sync_task_runs_in_a_thread() -> None:
    await SyncReport(n=5).dispatch()
    await run_worker(lambda: "report" in calls, queues=["w"])
    assert calls["report"] == [(5, False)]


async def test_malformed_message_is_dead_lettered_and_never_run() -> None:
    driver = await get_driver()
    await driver.enqueue(OutgoingMessage("bad-1", "w", b"not json at all"))
    await driver.enqueue(OutgoingMessage("bad-2", "w", b'{"v": 1, "task": "x:y", "o": "nope"}'))
    await run_worker(lambda: len(driver.dead_letters()) == 2, queues=["w"])  # type: ignore[attr-defined]
    letters = {d.task_id: d for d in await driver.list_dead_letters(queue="w")}
    assert "not valid JSON" in letters["bad-1"].failure.message
    assert "malformed options" in letters["bad-2"].failure.message


async def test_code_outside_allowed_roots_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil_tasks_mod.py"
    marker = tmp_path / "ran"
    evil.write_text(
        "from asynctasq import task\n"
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "@task\nasync def boom(): pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        payload = (
            b'{"v":1,"id":"e1","task":"evil_tasks_mod:boom","at":0,'
            b'"o":[3,0,"fixed",0,false,null,30],"args":[],"kwargs":{}}'
        )
        driver = await get_driver()
        await driver.enqueue(OutgoingMessage("e1", "w", payload))
        await run_worker(
            lambda: len(driver.dead_letters()) == 1,  # type: ignore[attr-defined]
            queues=["w"],
            allowed_roots=[TASKS_DIR],
        )
    finally:
        sys.path.remove(str(tmp_path))
    [letter] = await driver.list_dead_letters(queue="w")
    assert "outside the allowed roots" in letter.failure.message
    assert not marker.exists()


async def test_message_naming_a_non_task_is_refused() -> None:
    payload = (
        b'{"v":1,"id":"n1","task":"os:system","at":0,'
        b'"o":[3,0,"fixed",0,false,null,30],"args":["echo hi"],"kwargs":{}}'
    )
    driver = await get_driver()
    await driver.enqueue(OutgoingMessage("n1", "w", payload))
    await run_worker(lambda: len(driver.dead_letters()) == 1, queues=["w"])  # type: ignore[attr-defined]
    [letter] = await driver.list_dead_letters(queue="w")
    assert "not a task" in letter.failure.message


async def test_task_redelivered_past_max_attempts_is_dead_lettered_as_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = await get_driver()
    await add(1, 1).max_attempts(2).visibility_timeout(0.2).dispatch()
    # Two deliveries whose worker "died" (leases left to expire).
    for _ in range(2):
        got: list[Delivery] = []
        while not got:
            got = await driver.dequeue(["w"], limit=1, wait=1)
        await asyncio.sleep(0.3)
    with caplog.at_level(logging.ERROR, "asynctasq.worker"):
        await run_worker(lambda: len(driver.dead_letters()) == 1, queues=["w"])  # type: ignore[attr-defined]
    [letter] = await driver.list_dead_letters(queue="w")
    assert letter.failure.exception_type == "asynctasq.errors.TaskLostError"
    # Deliveries, never "runs": a killed worker may have taken it without starting it.
    assert "delivered 2 times before without being settled" in letter.failure.message
    assert "failed for good after 2 unsettled deliveries" in caplog.text
    assert "run(s)" not in caplog.text
    assert "add" not in calls


@task(queue="long", visibility_timeout=0.4)
async def long_running(key: str) -> None:
    record(key, "start")
    await asyncio.sleep(1.5)
    record(key, "end")


async def test_lease_is_renewed_while_a_long_task_runs() -> None:
    await long_running("lr").dispatch()
    driver = await get_driver()
    worker_task = asyncio.create_task(
        run_worker(lambda: calls.get("lr") == ["start", "end"], queues=["long"])
    )
    await asyncio.sleep(1.0)  # 2.5 x the visibility timeout: without renewal it would be back
    assert await driver.dequeue(["long"], limit=1, wait=0) == []
    await worker_task
    assert calls["lr"] == ["start", "end"]


async def test_graceful_shutdown_gives_back_unfinished_tasks() -> None:
    await long_running("sd").dispatch()
    driver = await get_driver()
    worker = Worker(
        driver, queues=["long"], shutdown_timeout=0.2, install_signal_handlers=False, poll_wait=0.1
    )
    runner = asyncio.create_task(worker.run())
    while "sd" not in calls:
        await asyncio.sleep(0.02)
    worker.request_stop()
    await asyncio.wait_for(runner, 5)
    assert calls["sd"] == ["start"]
    [back] = await driver.dequeue(["long"], limit=1, wait=0)
    assert back.attempts == 0  # given back, not counted as a run
    assert worker.stats.released == 1


@task(queue="slow-stop")
async def outlives_the_deadline(key: str) -> None:
    record(key, "start")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record(key, time.monotonic())
        raise


async def test_the_shutdown_deadline_counts_from_the_stop_request() -> None:
    """A fetch waiting on the broker when the stop comes (up to `poll_wait`) does not add
    its wait to the time running tasks get: they are given back `shutdown_timeout` after
    the request."""
    await outlives_the_deadline("dl").dispatch()
    driver = await get_driver()
    worker = Worker(
        driver,
        queues=["slow-stop"],
        shutdown_timeout=0.3,
        install_signal_handlers=False,
        poll_wait=3.0,
    )
    runner = asyncio.create_task(worker.run())
    while "dl" not in calls:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # the next fetch is waiting now
    asked = time.monotonic()
    worker.request_stop()
    await asyncio.wait_for(runner, 10)
    start, cancelled_at = calls["dl"]
    assert start == "start"
    assert 0.25 <= cancelled_at - asked < 1.5
    [back] = await driver.dequeue(["slow-stop"], limit=1, wait=0)
    assert back.attempts == 0  # given back, not counted as a run
    assert worker.stats.released == 1


@task(queue="swallow-stop")
async def swallows_its_stop(key: str) -> str:
    record(key, "start")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record(key, "caught")
    return "returned anyway"


async def test_a_task_that_catches_the_stop_and_returns_is_given_back() -> None:
    """Its run was cut short at the deadline, whatever it returned: given back uncounted
    (as the log says), not acknowledged as a success."""
    await swallows_its_stop("sw").dispatch()
    driver = await get_driver()
    worker = Worker(
        driver, queues=["swallow-stop"], shutdown_timeout=0.2, install_signal_handlers=False
    )
    runner = asyncio.create_task(worker.run())
    while "sw" not in calls:
        await asyncio.sleep(0.02)
    worker.request_stop()
    await asyncio.wait_for(runner, 10)
    assert calls["sw"] == ["start", "caught"]
    assert (worker.stats.succeeded, worker.stats.released) == (0, 1)
    [back] = await driver.dequeue(["swallow-stop"], limit=1, wait=0)
    assert back.attempts == 0


async def test_a_stop_can_be_asked_from_another_thread() -> None:
    await long_running("th").dispatch()
    driver = await get_driver()
    worker = Worker(
        driver, queues=["long"], shutdown_timeout=10, install_signal_handlers=False, poll_wait=0.1
    )
    runner = asyncio.create_task(worker.run())
    while "th" not in calls:
        await asyncio.sleep(0.02)
    await asyncio.to_thread(worker.request_stop)  # e.g. a web framework's shutdown hook
    await asyncio.wait_for(runner, 10)
    assert calls["th"] == ["start", "end"]  # drained: the task had its time to finish
    assert worker.stopping and worker.stats.released == 0


async def test_concurrency_limit_is_respected() -> None:
    running = 0
    peak = 0

    @task(queue="c")
    async def busy() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        record("busy", 1)

    for _ in range(20):
        await busy().dispatch()
    await run_worker(lambda: len(calls.get("busy", [])) == 20, queues=["c"], concurrency=3)
    assert peak == 3


async def test_queues_are_served_fairly() -> None:
    @task
    async def mark(queue: str) -> None:
        record("order", queue)
        await asyncio.sleep(0.01)

    for _ in range(30):
        await mark("a").on_queue("a").dispatch()
    for _ in range(5):
        await mark("b").on_queue("b").dispatch()
    await run_worker(lambda: len(calls.get("order", [])) == 35, queues=["a", "b"], concurrency=1)
    # One slot: every fetch takes one task, and the queue order rotates on every fetch, so
    # the queues alternate while both have work; b is not starved behind a's backlog.
    assert calls["order"][:10] == ["a", "b"] * 5
    assert calls["order"][10:] == ["a"] * 25


class FlakyDriver(MemoryDriver):
    """Fails every dequeue for a while: a broker outage."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.down_until = time.monotonic() + 0.8

    async def dequeue(self, queues: Any, *, limit: int, wait: float) -> list[Delivery]:
        if time.monotonic() < self.down_until:
            self.failures += 1
            raise ConnectionError("broker unreachable")
        return await super().dequeue(queues, limit=limit, wait=wait)


async def test_worker_survives_broker_errors_and_resumes() -> None:
    driver = FlakyDriver()
    await add(5, 5).dispatch()
    [msg] = await (await get_driver()).dequeue(["w"], limit=1, wait=0)
    await driver.enqueue(OutgoingMessage(msg.task_id, "w", msg.payload))
    worker = Worker(driver, queues=["w"], install_signal_handlers=False, poll_wait=0.1)
    runner = asyncio.create_task(worker.run())
    while "add" not in calls:
        assert not runner.done()
        await asyncio.sleep(0.05)
    worker.request_stop()
    await runner
    assert driver.failures >= 2
    assert calls["add"] == [10]


async def test_middleware_sees_events_in_order() -> None:
    events: list[str] = []

    class First(Middleware):
        def before_process(self, job: Job) -> None:
            events.append(f"first.before:{job.task_name.split(':')[1]}")

        def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
            events.append(f"first.after:{result}")

    class Second(Middleware):
        def before_process(self, job: Job) -> None:
            events.append("second.before")
            raise RuntimeError("a broken hook is logged, not fatal")

        def after_process(self, job: Job, result: Any, exception: BaseException | None) -> None:
            events.append("second.after")

    await add(2, 2).dispatch()
    await run_worker(lambda: len(events) == 4, queues=["w"], middleware=[First(), Second()])
    assert events == ["first.before:add", "second.before", "second.after", "first.after:4"]


async def test_burst_mode_exits_when_the_queues_are_empty() -> None:
    for i in range(5):
        await add(i, i).dispatch()
    driver = await get_driver()
    worker = Worker(driver, queues=["w"], burst=True, install_signal_handlers=False)
    await asyncio.wait_for(worker.run(), 10)
    assert sorted(calls["add"]) == [0, 2, 4, 6, 8]


@task(queue="w", max_attempts=3, retry_delay=1, retry_strategy="fixed")
async def built_after_a_blip(key: str) -> None:
    calls.setdefault("built", []).append(key)


async def test_burst_mode_waits_for_the_retry_of_a_task_that_could_not_be_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A database blip while fetching a model argument: retried in 1 s, which a burst run
    # waits for, as it does for a task whose own code failed.
    import asynctasq.worker.worker as worker_module

    real = worker_module.envelope.build_async
    blips = [ConnectionError("database blip")]

    async def flaky(target: Any, env: Any) -> Any:
        if blips:
            raise blips.pop()
        return await real(target, env)

    monkeypatch.setattr(worker_module.envelope, "build_async", flaky)
    await built_after_a_blip("k").dispatch()
    driver = await get_driver()
    worker = Worker(driver, queues=["w"], burst=True, install_signal_handlers=False)
    await asyncio.wait_for(worker.run(), 10)
    assert calls.get("built") == ["k"]
    assert worker.stats.retried == 1


# -- process pool ------------------------------------------------------------------------------
@pytest.fixture
def process_tasks() -> Any:
    sys.path.insert(0, TASKS_DIR)
    import core_test_tasks

    yield core_test_tasks
    sys.path.remove(TASKS_DIR)


async def _run_process_worker(until: Callable[[], Awaitable[bool]], **kwargs: Any) -> Worker:
    driver = await get_driver()
    worker = Worker(
        driver,
        queues=["default"],
        install_signal_handlers=False,
        poll_wait=0.1,
        allowed_roots=[TASKS_DIR],
        **kwargs,
    )
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 60
    while not await until():
        assert not runner.done(), runner.exception()
        assert time.monotonic() < deadline, "process task did not finish"
        await asyncio.sleep(0.05)
    worker.request_stop()
    await asyncio.wait_for(runner, 30)
    return worker


async def test_process_tasks_run_in_a_child_process(process_tasks: Any, tmp_path: Path) -> None:
    out_sync, out_async = tmp_path / "sync", tmp_path / "async"
    await process_tasks.ProcessSum(numbers=[1, 2, 3], out=str(out_sync)).dispatch()
    await process_tasks.AsyncProcessEcho(out=str(out_async)).dispatch()

    async def done() -> bool:
        return out_sync.exists() and out_async.exists() and out_async.read_text() != ""

    await _run_process_worker(done, process_pool_size=2)
    pid, total = out_sync.read_text().split()
    assert int(pid) != os.getpid() and total == "6"
    assert int(out_async.read_text()) != os.getpid()


async def test_process_timeout_kills_a_cpu_bound_child(process_tasks: Any) -> None:
    await process_tasks.spin_forever().dispatch()
    driver = await get_driver()

    async def dead() -> bool:
        return bool(await driver.list_dead_letters())

    started = time.monotonic()
    await _run_process_worker(dead, process_pool_size=1)
    assert time.monotonic() - started < 20
    [letter] = await driver.list_dead_letters()
    assert letter.failure.exception_type == "asynctasq.errors.TaskTimeoutError"


async def test_max_tasks_per_child_recycles_children(process_tasks: Any, tmp_path: Path) -> None:
    out = tmp_path / "pids"
    for _ in range(4):
        await process_tasks.write_pid(str(out)).dispatch()

    async def done() -> bool:
        return out.exists() and len(out.read_text().split()) == 4

    await _run_process_worker(done, process_pool_size=1, process_max_tasks_per_child=1)
    pids = out.read_text().split()
    assert len(set(pids)) == 4  # every task got a fresh child


async def test_enum_argument_from_a_module_outside_the_allowed_roots_is_refused(
    tmp_path: Path,
) -> None:
    payload = (
        b'{"v":1,"id":"g1","task":"' + add.name.encode() + b'","at":0,'
        b'"o":[3,0,"fixed",0,false,null,30],'
        b'"args":[{"__aq__":"enum","v":["evil_enum_mod:Colour",1]},2],"kwargs":{}}'
    )
    (tmp_path / "evil_enum_mod.py").write_text(
        f"open({str(tmp_path / 'ran')!r}, 'w')\n"
        "import enum\nclass Colour(enum.IntEnum):\n    RED = 1\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        driver = await get_driver()
        await driver.enqueue(OutgoingMessage("g1", "w", payload))
        await run_worker(
            lambda: len(driver.dead_letters()) == 1,  # type: ignore[attr-defined]
            queues=["w"],
            allowed_roots=[TASKS_DIR],
        )
    finally:
        sys.path.remove(str(tmp_path))
    assert not (tmp_path / "ran").exists()
    assert "add" not in calls


def test_a_blocking_task_thread_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "hang.py"
    script.write_text(
        "import asyncio, time\n"
        "from asynctasq import task, set_global_config\n"
        "from asynctasq.drivers.connections import get_driver\n"
        "from asynctasq.worker import Worker\n"
        "set_global_config(driver='memory')\n"
        "@task\n"
        "def sleepy() -> None:\n"
        "    time.sleep(60)\n"
        "async def main() -> None:\n"
        "    await sleepy().dispatch()\n"
        "    w = Worker(await get_driver(), shutdown_timeout=0.2, install_signal_handlers=False)\n"
        "    runner = asyncio.create_task(w.run())\n"
        "    await asyncio.sleep(0.5)\n"
        "    w.request_stop()\n"
        "    await runner\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, str(script)], check=True, timeout=30)
    assert time.monotonic() - started < 20  # not the task's 60 s


def test_worker_settings_are_range_checked() -> None:
    from asynctasq import set_global_config
    from asynctasq.errors import ConfigError

    with pytest.raises(ConfigError, match="worker.concurrency must be at least 1"):
        set_global_config(worker={"concurrency": 0})


def test_unguarded_script_with_a_process_task_does_not_fork_bomb(tmp_path: Path) -> None:
    """Top-level worker code, no main guard: children must not re-run the script."""
    import subprocess

    script = tmp_path / "unguarded_app.py"
    script.write_text(
        "import asyncio\n"
        "from asynctasq import task, init\n"
        "from asynctasq.drivers.connections import get_driver\n"
        "from asynctasq.worker import Worker\n"
        "init({'driver': 'memory'})\n"
        "@task(process=True, max_attempts=1)\n"
        "def crunch(n: int) -> int:\n"
        "    return n * 2\n"
        "async def main() -> None:\n"
        "    await crunch(21).dispatch()\n"
        "    driver = await get_driver()\n"
        "    w = Worker(driver, burst=True, install_signal_handlers=False)\n"
        "    await w.run()\n"
        "    dead = await driver.list_dead_letters()\n"
        "    print('succeeded', w.stats.succeeded, 'dead', [d.failure.message for d in dead])\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, proc.stderr
    # The child imports the script by name to find `crunch`; that import would start a worker
    # in the child, which is refused with a clear message instead of recursing.
    assert "a worker cannot start inside a task" in proc.stdout, proc.stdout


@task(queue="w", max_attempts=5, retry_delay=0)
async def gives_up(key: str) -> None:
    from asynctasq.errors import PermanentError

    record(key, "run")
    raise PermanentError("the card was declined")


async def test_permanent_error_is_not_retried() -> None:
    await gives_up("perm").dispatch()
    driver = await get_driver()
    await run_worker(lambda: len(driver.dead_letters()) == 1, queues=["w"])  # type: ignore[attr-defined]
    assert calls["perm"] == ["run"]


async def test_transient_error_while_rebuilding_a_task_is_retried() -> None:
    from asynctasq.serializer import isolated_registry, register_hook

    state = {"fails": 2}

    class Flaky:
        value = 7

    class FlakyHook:
        tag = "flaky-test"

        def matches(self, obj: object) -> bool:
            return isinstance(obj, Flaky)

        def encode(self, obj: Any) -> Any:
            return obj.value

        async def decode(self, data: Any) -> Any:
            if state["fails"]:
                state["fails"] -= 1
                raise ConnectionError("database restarting")
            return data

    with isolated_registry():
        register_hook(FlakyHook())
        await add(Flaky(), 1).max_attempts(5).retry_after(0).dispatch()  # type: ignore[arg-type]
        await run_worker(lambda: "add" in calls, queues=["w"])
    assert calls["add"] == [8]
    assert state["fails"] == 0


async def test_async_boot_hook_is_awaited_before_work_starts() -> None:
    events: list[str] = []

    class Setup(Middleware):
        async def before_worker_boot(self, worker: Worker) -> None:  # type: ignore[override]
            await asyncio.sleep(0.05)
            events.append("booted")

        def before_process(self, job: Job) -> None:
            events.append("process")

    await add(1, 1).dispatch()
    await run_worker(lambda: "add" in calls, queues=["w"], middleware=[Setup()])
    assert events == ["booted", "process"]


async def test_imports_reach_process_children(process_tasks: Any, tmp_path: Path) -> None:
    setup = Path(TASKS_DIR) / "core_test_setup.py"
    out = tmp_path / "seen"
    try:
        setup.write_text("SETUP_DONE = True\n")
        await process_tasks.write_if_imported("core_test_setup", str(out)).dispatch()

        async def done() -> bool:
            return out.exists()

        await _run_process_worker(done, process_pool_size=1, imports=["core_test_setup"])
    finally:
        setup.unlink()
    imported, pid = out.read_text().split()
    assert imported == "True"
    assert int(pid) != os.getpid()


async def test_a_worker_names_the_queues_where_tasks_wait_that_it_does_not_serve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The commonest 'my tasks never run': they went to another queue (or a misspelt one)."""
    await add(1, 2).on_queue("emails").dispatch()
    await add(2, 3).on_queue("emails").delay(60).dispatch()
    await add(3, 4).on_queue("reports").dispatch()
    with caplog.at_level(logging.INFO, "asynctasq.worker"):
        await run_worker(lambda: "does not serve" in caplog.text, queues=["w"])
    [line] = [r.getMessage() for r in caplog.records if "does not serve" in r.getMessage()]
    assert line == (
        "tasks wait in queues this worker does not serve: emails (1 ready, 1 delayed), "
        "reports (1 ready, 0 delayed) (it serves w; add them to --queues to run "
        "them here)"
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, "asynctasq.worker"):  # served: nothing to say
        served = ["w", "emails", "reports"]
        await run_worker(lambda: calls.get("add") == [3, 7], queues=served)
    assert "does not serve" not in caplog.text
