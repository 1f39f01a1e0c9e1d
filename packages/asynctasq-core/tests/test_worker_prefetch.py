"""`Worker(prefetch=N)`: messages taken ahead of free slots start as slots free up, every
task runs once, never more than `concurrency` at a time, and a stop gives the waiting ones
back without counting an attempt."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import pytest

from asynctasq import task
from asynctasq.drivers.base import Delivery
from asynctasq.drivers.connections import get_driver
from asynctasq.worker import Worker
from asynctasq.worker.leases import MAX_RENEW_INTERVAL, LeaseKeeper

QUEUE = "prefetch"
state = {"now": 0, "most": 0, "ran": 0}


@task(queue=QUEUE)
async def short(i: int) -> None:
    state["now"] += 1
    state["most"] = max(state["most"], state["now"])
    await asyncio.sleep(0.001)
    state["now"] -= 1
    state["ran"] += 1


@task(queue=QUEUE)
async def forever(i: int) -> None:
    await asyncio.sleep(60)


@pytest.fixture(autouse=True)
def _reset() -> None:
    state.update(now=0, most=0, ran=0)


async def test_prefetched_tasks_all_run_once_within_the_concurrency() -> None:
    for i in range(200):
        await short(i).dispatch()
    worker = Worker(
        await get_driver(),
        queues=[QUEUE],
        concurrency=3,
        prefetch=6,
        burst=True,
        install_signal_handlers=False,
    )
    await asyncio.wait_for(worker.run(), 30)
    assert state["ran"] == 200 and worker.stats.succeeded == 200
    assert state["most"] == 3  # the window is wider than the concurrency, runs are not


async def test_a_stop_gives_the_waiting_ones_back_uncounted() -> None:
    for i in range(8):
        await forever(i).dispatch()
    driver = await get_driver()
    worker = Worker(
        driver,
        queues=[QUEUE],
        concurrency=2,
        prefetch=4,
        shutdown_timeout=0.2,
        poll_wait=0.1,
        install_signal_handlers=False,
    )
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 15
    while worker.running < 2 or worker.prefetched < 4:
        assert time.monotonic() < deadline and not runner.done()
        await asyncio.sleep(0.01)
    [stats] = await driver.stats([QUEUE])
    assert (stats.ready, stats.in_flight) == (2, 6)  # 2 running, 4 taken ahead
    worker.request_stop()
    await asyncio.wait_for(runner, 30)
    back = await driver.dequeue([QUEUE], limit=10, wait=0)
    # The 4 that never started come back as they were; the 2 cut off by the deadline
    # are given back too (released, not failed).
    assert len(back) == 8
    assert all(d.attempts == 0 for d in back)


def test_prefetch_must_be_a_count() -> None:
    with pytest.raises(ValueError, match="prefetch must be a whole number >= 0"):
        Worker("memory", prefetch=-1)


runs: dict[int, int] = {}


@task(queue=QUEUE, visibility_timeout=0.6)
async def lease_long(i: int) -> None:
    runs[i] = runs.get(i, 0) + 1
    await asyncio.sleep(0.6)  # ends as a waiting task's lease is due for renewal


async def test_a_prefetched_task_keeps_its_lease_when_it_starts() -> None:
    """A waiting task's lease is renewed on its own schedule; starting it must not push the
    next renewal past its expiry (another worker would take it and run it twice)."""
    runs.clear()
    for i in range(5):
        await lease_long(i).dispatch()
    driver = await get_driver()
    busy = Worker(driver, queues=[QUEUE], concurrency=1, prefetch=4, poll_wait=0.05,
                  install_signal_handlers=False)  # fmt: skip
    idle = Worker(driver, queues=[QUEUE], concurrency=1, poll_wait=0.05,
                  install_signal_handlers=False)  # fmt: skip
    first = asyncio.create_task(busy.run())
    deadline = time.monotonic() + 15
    while busy.prefetched < 4:  # all five taken by the busy one before the idle one starts
        assert time.monotonic() < deadline and not first.done()
        await asyncio.sleep(0.005)
    second = asyncio.create_task(idle.run())
    while sum(runs.values()) < 5 or busy.running or busy.prefetched or idle.running:
        assert time.monotonic() < deadline, runs
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.8)  # a lapsed lease would hand one out again by now
    for worker in (busy, idle):
        worker.request_stop()
    await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert runs == dict.fromkeys(range(5), 1)
    assert idle.stats.processed == 0


class _Extends:
    """A driver stand-in that records the leases `LeaseKeeper` renews."""

    def __init__(self) -> None:
        self.renewed: list[str] = []
        self.leases: set[float] = set()

    async def extend(self, deliveries: Any, visibility_timeout: float) -> None:
        self.renewed += [d.task_id for d in deliveries]
        self.leases.add(visibility_timeout)


async def test_tracking_a_lease_again_never_postpones_its_renewal() -> None:
    driver = _Extends()
    keeper = LeaseKeeper(driver)  # type: ignore[arg-type]
    delivery = Delivery("t1", QUEUE, b"", attempts=0, receipt=1, visibility_timeout=0.2)
    keeper.track(delivery, 0.2)  # taken ahead: renewed 0.1 s from now
    running = asyncio.create_task(keeper.run())
    await asyncio.sleep(0.08)
    keeper.track(delivery, 0.2)  # it starts: tracked from its first line
    keeper.renew_to(delivery, 30.0)  # its message read: to the task's own visibility timeout
    await asyncio.sleep(0.06)  # past the first renewal, long before 0.08 + 0.1 s
    assert driver.renewed == ["t1"]
    keeper.forget(delivery)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


@pytest.mark.parametrize("granted", [math.nan, math.inf, -1.0, 0, "60", None, True])
async def test_the_keeper_survives_any_lease_a_record_may_hold(granted: Any) -> None:
    """A record written behind the driver's back: the worker refuses it, but it is tracked
    from the first line; the keeper must neither raise nor renew with its lease."""
    driver = _Extends()
    keeper = LeaseKeeper(driver)  # type: ignore[arg-type]
    forged = Delivery("f", QUEUE, b"", attempts=0, receipt=1, visibility_timeout=granted)
    keeper.track(forged, granted)
    running = asyncio.create_task(keeper.run())
    await asyncio.sleep(0.2)  # past its first renewal
    assert not running.done()  # still alive
    keeper.forget(forged)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert driver.renewed == ["f"] * len(driver.renewed) and driver.leases <= {0.1}
    assert driver.renewed  # renewed, with a lease the keeper chose, not the forged one


async def test_a_lease_of_days_is_renewed_at_least_hourly() -> None:
    keeper = LeaseKeeper(_Extends())  # type: ignore[arg-type]
    day = Delivery("d", QUEUE, b"", attempts=0, receipt=1, visibility_timeout=86400.0)
    keeper.track(day, 86400.0)
    [(renew_at, _, _)] = keeper._due.values()
    assert renew_at - time.monotonic() <= MAX_RENEW_INTERVAL
    await keeper._renew([(day, 86400.0)])  # after a renewal too
    [(renew_at, _, vt)] = keeper._due.values()
    assert renew_at - time.monotonic() <= MAX_RENEW_INTERVAL and vt == 86400.0
