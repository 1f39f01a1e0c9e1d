"""`asynctasq.testing.memory_queues` and the pytest fixtures: dispatch to fresh in-memory
queues, run until idle through the real worker, eager mode, and the dispatch assertions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import asynctasq.config as config_module
import asynctasq.core.sync as sync_dispatch
from asynctasq import task
from asynctasq.config import get_config, set_global_config
from asynctasq.core.task import Task
from asynctasq.drivers import _memory_inspect
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.errors import TaskFailedError
from asynctasq.middleware import dispatch_middleware
from asynctasq.testing import MemoryQueues, decode_message, memory_queues

runs: list[str] = []


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    runs.clear()


@task(queue="mail", keep_result=True)
async def greet(name: str, punctuation: str = "!") -> str:
    runs.append(f"greet {name}")
    return f"hello {name}{punctuation}"


@task(queue="mail", max_attempts=3, retry_delay=600)
async def flaky(succeed_on: int) -> int:
    runs.append("flaky")
    if len(runs) < succeed_on:
        raise ConnectionError(f"run {len(runs)} failed")
    return len(runs)


@task(queue="mail", max_attempts=3, retry_delay=8, retry_strategy="fixed")
async def flaky_soon(succeed_on: int) -> int:
    runs.append("flaky")
    if len(runs) < succeed_on:
        raise ConnectionError(f"run {len(runs)} failed")
    return len(runs)


@task(queue="mail", max_attempts=4)
async def doomed() -> None:
    runs.append("doomed")
    raise ValueError("never works")


@task(queue="fanout")
async def fan_out(count: int) -> None:
    runs.append("fan_out")
    for i in range(count):
        await greet(f"child {i}").dispatch()


@task(queue="loop")
async def forever() -> None:
    runs.append("forever")
    await forever().dispatch()


class Refund(Task[str]):
    queue = "billing"
    max_retries = 2
    retry_delay = 30

    def __init__(self, order_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id

    async def handle(self) -> str:
        runs.append(f"refund {self.order_id}")
        if self.order_id < 0:
            raise LookupError(f"no order {self.order_id}")
        return f"refunded {self.order_id}"

    def should_retry(self, exception: Exception) -> bool:
        return not isinstance(exception, LookupError)


# -- dispatch goes to the test's queues ----------------------------------------------------


async def test_dispatches_go_to_fresh_memory_queues(asynctasq_queues: MemoryQueues) -> None:
    task_id = await greet("ada").dispatch()
    [message] = asynctasq_queues.driver.queued("mail")
    assert message.task_id == task_id
    decoded = decode_message(message.payload)
    assert (decoded.task, decoded.args, decoded.kwargs) == (greet.name, ("ada",), {})
    assert runs == []  # not eager: nothing ran


async def test_queues_of_two_blocks_are_apart() -> None:
    with memory_queues() as first:
        await greet("a").dispatch()
    with memory_queues() as second:
        assert second.driver.messages() == []
        assert second.namespace != first.namespace


async def test_the_configuration_is_restored_after_the_block() -> None:
    set_global_config(driver="memory", task_defaults={"queue": "kept"})
    before = config_module.configured()
    with memory_queues() as queues:
        assert get_config().driver == "memory"
        assert get_config().driver_settings("memory") == {"namespace": queues.namespace}
        assert get_config().task_defaults.queue == "kept"  # the rest is the test's own
        assert _memory_inspect.enqueue_hooks == {}
        assert len(dispatch_middleware()) == 1
    assert config_module.configured() is before
    assert dispatch_middleware() == []


async def test_an_unconfigured_process_stays_unconfigured() -> None:
    config_module.use_config(None)
    with memory_queues():
        assert get_config().driver == "memory"
    assert config_module.configured() is None


# -- assertions ---------------------------------------------------------------------------


async def test_assert_dispatched_counts_and_matches_arguments(
    asynctasq_queues: MemoryQueues,
) -> None:
    await greet("ada").dispatch()
    await greet("bob", punctuation="?").dispatch()
    await Refund(order_id=7).dispatch()

    asynctasq_queues.assert_dispatched(greet, times=2)
    [bob] = asynctasq_queues.assert_dispatched(greet, args=["bob"], kwargs={"punctuation": "?"})
    assert bob.queue == "mail" and bob.delay == 0
    asynctasq_queues.assert_dispatched(Refund, times=1, kwargs={"order_id": 7}, queue="billing")
    asynctasq_queues.assert_dispatched(greet.name, times=1, args=("ada",))
    asynctasq_queues.assert_not_dispatched(doomed)
    assert [d.task for d in asynctasq_queues.dispatches()] == [greet.name] * 2 + [Refund._task_name]


async def test_assert_dispatched_says_what_was_dispatched_instead(
    asynctasq_queues: MemoryQueues,
) -> None:
    await greet("ada").dispatch()
    with pytest.raises(AssertionError) as raised:
        asynctasq_queues.assert_dispatched(greet, times=1, args=("zoe",))
    text = str(raised.value)
    assert "args=('zoe',)" in text and "dispatched 1 time(s), found 0" in text
    assert "(args=('ada',), kwargs={}) on 'mail'" in text
    with pytest.raises(AssertionError, match="at least once, found 0; dispatched: "):
        asynctasq_queues.assert_dispatched(doomed)
    with pytest.raises(AssertionError, match="dispatched 0 time"):
        asynctasq_queues.assert_not_dispatched(greet)


async def test_assert_dispatched_refuses_a_call_instead_of_the_task(
    asynctasq_queues: MemoryQueues,
) -> None:
    call = greet("ada")
    with pytest.raises(TypeError, match="pass the function decorated with @task"):
        asynctasq_queues.assert_dispatched(call)  # type: ignore[arg-type]
    await call.dispatch()  # not left undispatched (that would warn)


# -- running until idle -------------------------------------------------------------------


async def test_run_until_idle_runs_everything_through_the_worker(
    asynctasq_queues: MemoryQueues,
) -> None:
    ada = await greet("ada").dispatch()
    refund = await Refund(order_id=3).dispatch()
    outcomes = await asynctasq_queues.run_until_idle()
    # In the order they ran: the worker serves its queues in turn, here billing first.
    assert [(o.task_id, o.state, o.result, o.runs) for o in outcomes] == [
        (refund, "succeeded", "refunded 3", 1),
        (ada, "succeeded", "hello ada!", 1),
    ]
    assert await ada.result(timeout=1) == "hello ada!"  # keep_result works as in production
    assert asynctasq_queues.driver.idle()
    assert await asynctasq_queues.run_until_idle() == []  # nothing left to run


async def test_retries_run_at_once_with_the_delays_the_worker_chose(
    asynctasq_queues: MemoryQueues,
) -> None:
    await flaky(succeed_on=3).dispatch()
    [outcome] = await asynctasq_queues.run_until_idle()
    assert (outcome.state, outcome.result, outcome.runs) == ("succeeded", 3, 3)
    # exponential backoff from 600 s with jitter: [300, 600], then [600, 1200]; not waited for
    assert len(outcome.retry_delays) == 2
    assert 300 <= outcome.retry_delays[0] <= 600 <= outcome.retry_delays[1] <= 1200
    assert runs == ["flaky"] * 3


@pytest.mark.parametrize("fixture", ["asynctasq_queues", "asynctasq_eager"])
async def test_short_retry_delays_are_not_waited_for_either(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    # A burst run waits for a retry due within 10 s until it is taken: here at once, so
    # the run ends then, not 8 + 2 s later for each retry.
    queues: MemoryQueues = request.getfixturevalue(fixture)
    started = time.monotonic()
    await flaky_soon(succeed_on=3).dispatch()
    outcomes = queues.outcomes if queues.eager else await queues.run_until_idle()
    assert [(o.state, o.runs, o.retry_delays) for o in outcomes] == [("succeeded", 3, [8, 8])]
    assert time.monotonic() - started < 8  # the two delays were 16 s of sleeping


async def test_a_task_out_of_attempts_is_dead_lettered_with_its_error(
    asynctasq_queues: MemoryQueues,
) -> None:
    await doomed().dispatch()
    [outcome] = await asynctasq_queues.run_until_idle()
    assert (outcome.state, outcome.runs) == ("dead_lettered", 4)
    assert isinstance(outcome.error, ValueError) and str(outcome.error) == "never works"
    assert outcome.failure is not None and outcome.failure.exception_type == "builtins.ValueError"
    [dead] = asynctasq_queues.driver.dead_letters()
    assert dead.task_id == outcome.task_id


async def test_should_retry_is_honoured(asynctasq_queues: MemoryQueues) -> None:
    await Refund(order_id=-1).dispatch()
    [outcome] = await asynctasq_queues.run_until_idle()
    assert (outcome.state, outcome.runs, outcome.retry_delays) == ("dead_lettered", 1, [])
    assert isinstance(outcome.error, LookupError)


async def test_delayed_tasks_run_only_when_asked(asynctasq_queues: MemoryQueues) -> None:
    later = await greet("later").delay(3600).dispatch()
    await flaky(succeed_on=2).dispatch()
    outcomes = await asynctasq_queues.run_until_idle(delayed=False)
    assert [(o.task, o.state) for o in outcomes] == [(flaky.name, "failed")]  # retry is queued
    assert [m.state for m in asynctasq_queues.driver.queued()] == ["delayed", "delayed"]
    outcomes = await asynctasq_queues.run_until_idle()
    assert {(o.task_id, o.state) for o in outcomes} >= {(later, "succeeded")}
    assert [o.state for o in outcomes] == ["succeeded", "succeeded"]


async def test_tasks_dispatched_by_running_tasks_run_too(asynctasq_queues: MemoryQueues) -> None:
    await fan_out(3).dispatch()
    outcomes = await asynctasq_queues.run_until_idle()
    assert [o.task for o in outcomes] == [fan_out.name] + [greet.name] * 3
    assert all(o.state == "succeeded" for o in outcomes)
    asynctasq_queues.assert_dispatched(greet, times=3)


async def test_a_task_dispatching_itself_forever_stops_the_run(
    asynctasq_queues: MemoryQueues,
) -> None:
    await forever().dispatch()
    with pytest.raises(RuntimeError, match="still queued after 20 runs"):
        await asynctasq_queues.run_until_idle(max_runs=20)
    assert 20 <= len(runs) <= 25


# -- eager mode ---------------------------------------------------------------------------


async def test_eager_dispatch_runs_the_task_before_returning(
    asynctasq_eager: MemoryQueues,
) -> None:
    task_id = await greet("ada").dispatch()
    assert runs == ["greet ada"]
    assert await task_id.result(timeout=1) == "hello ada!"
    [outcome] = asynctasq_eager.outcomes
    assert (outcome.task_id, outcome.state) == (task_id, "succeeded")
    asynctasq_eager.assert_dispatched(greet, times=1, args=("ada",))
    assert asynctasq_eager.driver.idle()


async def test_eager_retries_up_to_max_attempts(asynctasq_eager: MemoryQueues) -> None:
    await flaky(succeed_on=3).dispatch()
    assert runs == ["flaky"] * 3
    assert asynctasq_eager.outcomes[0].result == 3


async def test_eager_raises_the_error_of_a_task_that_fails_for_good(
    asynctasq_eager: MemoryQueues,
) -> None:
    with pytest.raises(ValueError, match="never works"):
        await doomed().dispatch()
    assert runs == ["doomed"] * 4
    asynctasq_eager.assert_dispatched(doomed, times=1)  # it was dispatched all the same


async def test_eager_without_propagation_keeps_the_outcome() -> None:
    with memory_queues(eager=True, propagate=False) as queues:
        await Refund(order_id=-5).dispatch()
        [outcome] = queues.outcomes
        assert outcome.state == "dead_lettered" and isinstance(outcome.error, LookupError)


async def test_eager_runs_what_the_task_dispatches_before_returning(
    asynctasq_eager: MemoryQueues,
) -> None:
    await fan_out(2).dispatch()
    assert runs == ["fan_out", "greet child 0", "greet child 1"]


async def test_eager_dispatch_many(asynctasq_eager: MemoryQueues) -> None:
    from asynctasq import dispatch_many

    await dispatch_many([greet("a"), greet("b")])
    assert sorted(runs) == ["greet a", "greet b"]


async def test_eager_dead_letter_without_a_run_raises_task_failed() -> None:
    with memory_queues(eager=True) as queues:
        # A message no worker can decode: dead-lettered without running anything.
        with pytest.raises(TaskFailedError, match="failed for good: .*MalformedMessageError"):
            await queues.driver.enqueue(OutgoingMessage("x1", "mail", b"not an envelope"))
        [outcome] = queues.outcomes
        assert (outcome.state, outcome.runs, outcome.error) == ("dead_lettered", 0, None)


def test_the_queues_for_testing_work_where_pytest_is_not_installed() -> None:
    # A script or a unittest suite tests its dispatches with `memory_queues`; only the driver
    # conformance suite, a set of pytest tests, needs pytest.
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["pytest"] = None  # import pytest now raises ImportError
        from asynctasq import task
        from asynctasq.testing import memory_queues

        @task(queue="mail")
        async def greet(name: str) -> str:
            return "hello " + name

        async def main() -> None:
            with memory_queues() as queues:
                await greet("ada").dispatch()
                [outcome] = await queues.run_until_idle()
                print(outcome.result)

        asyncio.run(main())
        try:
            from asynctasq.testing import DriverConformance
        except ImportError as exc:
            print("conformance:", "pytest" in str(exc))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["hello ada", "conformance: True"]


def test_a_configuration_set_inside_the_block_keeps_the_test_queues() -> None:
    from asynctasq.config import init

    before = config_module.configured()
    try:
        with memory_queues() as queues:
            config = init({"driver": "redis", "task_defaults": {"queue": "app"}})
            assert config.driver == "memory"
            assert config.driver_settings("memory") == {"namespace": queues.namespace}
            assert config.task_defaults.queue == "app"  # the application's other settings
            set_global_config(driver="redis")
            assert get_config().driver == "memory"
        assert config_module.configured() is before
        assert init({"driver": "redis"}).driver == "redis"  # the pin ends with the block
    finally:
        config_module.use_config(before)


def test_a_finished_block_leaves_nothing_behind_in_the_process() -> None:
    from asynctasq.drivers import memory as memory_module

    with memory_queues() as queues:
        assert queues.namespace in memory_module._shared
    for shared in (memory_module._shared, memory_module._shared_lifecycle):
        assert queues.namespace not in shared


@task(queue="mail")
def sync_child(n: int) -> None:
    runs.append(f"child {n}")


@task(queue="mail")
def sync_parent(n: int) -> None:
    runs.append(f"parent {n}")
    sync_child(n + 1).dispatch_sync()
    runs.append(f"parent {n} done")


async def test_eager_mode_runs_what_a_sync_task_dispatches_with_dispatch_sync() -> None:
    # The nested dispatch goes through the sync dispatch thread, which carries the caller's
    # context: the eager loop already running takes it, not a second one on that thread.
    try:
        with memory_queues(eager=True) as queues:
            await sync_parent(1).dispatch()
            assert [o.state for o in queues.outcomes] == ["succeeded", "succeeded"]
    finally:
        await asyncio.to_thread(sync_dispatch.close)
    # Queued by the parent and run after it, as any dispatch from a running task is; a
    # second eager run on the dispatch thread would have run it inside dispatch_sync().
    assert runs == ["parent 1", "parent 1 done", "child 2"]
