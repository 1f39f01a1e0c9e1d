"""The scheduler on the in-memory driver: claims, misfires, retries, removed schedules."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from asynctasq import every, task
from asynctasq.core.task import Task
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.lifecycle import events
from asynctasq.lifecycle.events import Event, EventType
from asynctasq.schedules import registry
from asynctasq.schedules.claims import last_key, read_last, tick_key
from asynctasq.schedules.registry import Schedule, schedule
from asynctasq.schedules.scheduler import MAX_SLEEP, Scheduler
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

QUEUE = "sched-unit"
BASE = 1_800_000_000  # a multiple of 10 (and of 60): ticks of every(seconds=10) fall on it
runs: list[str] = []


@task(queue=QUEUE)
async def beat(label: str = "beat") -> None:
    runs.append(label)


class Nightly(Task[None]):
    queue = QUEUE

    def __init__(self, region: str = "eu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region = region

    async def handle(self) -> None:
        runs.append(self.region)


@pytest.fixture(autouse=True)
def _isolated_schedules() -> Iterator[None]:
    saved = dict(registry._schedules)
    registry._schedules.clear()
    runs.clear()
    yield
    registry._schedules.clear()
    registry._schedules.update(saved)


async def queued(driver: MemoryDriver, queue: str = QUEUE) -> list[dict[str, Any]]:
    """The envelopes waiting in `queue` (taken off it)."""
    found = await driver.dequeue([queue], limit=1000, wait=0)
    await driver.ack(found)
    return [orjson.loads(d.payload) for d in found]


def every_ten(name: str = "beat", *, catch_up: bool = False) -> Schedule:
    return schedule(beat(name), every(seconds=10), name=name, catch_up=catch_up)


def scheduler(driver: Any, *schedules: Schedule, holder: str = "w1", **kw: Any) -> Scheduler:
    kw.setdefault("grace", 60)
    return Scheduler(driver, list(schedules), holder=holder, **kw)


async def test_one_tick_is_dispatched_once_by_any_number_of_schedulers(
    memory: MemoryDriver,
) -> None:
    s = every_ten()
    replicas = [scheduler(memory, s, holder=f"w{n}") for n in range(3)]
    for now in (BASE + 0.01, BASE + 10.2, BASE + 20.5):
        await asyncio.gather(*(r.run_once(now) for r in replicas))
    envelopes = await queued(memory)
    assert [e["args"] for e in envelopes] == [["beat"]] * 3
    assert sum(r.fired for r in replicas) == 3
    assert await read_last(memory, "beat") == BASE + 20
    holders = {await memory.read_claim(tick_key("beat", BASE + 10 * n)) for n in range(3)}
    assert holders <= {"w0", "w1", "w2"} and None not in holders


async def test_the_next_wake_is_the_next_tick_and_nothing_fires_early(
    memory: MemoryDriver,
) -> None:
    sched = scheduler(memory, every_ten())
    assert await sched.run_once(BASE + 0.5) == BASE + 10
    assert await sched.run_once(BASE + 9.99) == BASE + 10  # woken early: nothing due yet
    assert len(await queued(memory)) == 1
    assert await sched.run_once(BASE + 10) == BASE + 20
    assert len(await queued(memory)) == 1


async def test_a_schedule_far_away_wakes_the_scheduler_at_most_every_max_sleep(
    memory: MemoryDriver,
) -> None:
    s = schedule(beat("daily"), every(days=1), name="daily")
    sched = scheduler(memory, s)
    assert await sched.run_once(BASE + 7200) == BASE + 7200 + MAX_SLEEP


async def test_missed_ticks_fire_once_by_default_and_older_ones_are_logged(
    memory: MemoryDriver, caplog: pytest.LogCaptureFixture
) -> None:
    await scheduler(memory, every_ten(), holder="before").run_once(BASE - 40 + 0.1)
    assert len(await queued(memory)) == 1
    # No scheduler ran for ticks BASE-30 .. BASE+30 (grace 60 covers all but BASE-30).
    sched = scheduler(memory, every_ten())
    with caplog.at_level(logging.WARNING, "asynctasq.schedules"):
        await sched.run_once(BASE + 30.5)
    assert len(await queued(memory)) == 1
    assert await read_last(memory, "beat") == BASE + 30
    assert "missed tick(s) from 1799999980 to 1800000020 skipped (catch_up=False" in caplog.text


async def test_the_first_run_of_a_schedule_reports_nothing_missed(
    memory: MemoryDriver, caplog: pytest.LogCaptureFixture
) -> None:
    # No tick was ever recorded: the ticks of the grace period before the first start were
    # not missed (the schedule did not exist), so nothing is logged or published as skipped.
    sched = scheduler(memory, every_ten(), events=True)
    with caplog.at_level(logging.INFO, "asynctasq.schedules"):
        await sched.run_once(BASE + 30.5)
    assert len(await queued(memory)) == 1
    assert await read_last(memory, "beat") == BASE + 30
    assert "skipped" not in caplog.text and "first run" in caplog.text
    entries, _ = await memory.read_log(events.LOG, None, wait=0)
    types = [e.type for e in map(Event.decode, entries) if e is not None]
    assert types == [EventType.SCHEDULE_FIRED]
    # Once a tick is on record, a later gap is reported again.
    caplog.clear()
    with caplog.at_level(logging.WARNING, "asynctasq.schedules"):
        await scheduler(memory, every_ten(), holder="w2").run_once(BASE + 60.5)
    assert "missed tick(s) from 1800000040 to 1800000050 skipped" in caplog.text


async def test_catch_up_fires_every_missed_tick_within_the_grace_period(
    memory: MemoryDriver, caplog: pytest.LogCaptureFixture
) -> None:
    await scheduler(memory, every_ten(catch_up=True), holder="before").run_once(BASE - 10.5)
    assert len(await queued(memory)) == 1  # BASE-20: on record from now on
    sched = scheduler(memory, every_ten(catch_up=True), grace=25)
    with caplog.at_level(logging.WARNING, "asynctasq.schedules"):
        await sched.run_once(BASE + 30.5)  # window from BASE+5.5: ticks BASE+10, +20, +30
    assert len(await queued(memory)) == 3
    # BASE-10 and BASE went by while no scheduler ran, past the grace period: logged.
    assert "missed tick(s) from 1799999990 to 1800000005 skipped (older than the grace" in (
        caplog.text
    )
    # A second replica coming back now finds them all claimed.
    late = scheduler(memory, every_ten(catch_up=True), holder="w2", grace=25)
    await late.run_once(BASE + 31)
    assert await queued(memory) == []


async def test_a_tick_older_than_the_grace_period_never_fires(memory: MemoryDriver) -> None:
    sched = scheduler(memory, every_ten(catch_up=True), grace=5)
    await sched.run_once(BASE + 8)  # BASE was 8 s ago: past the 5 s grace
    assert await queued(memory) == []
    await sched.run_once(BASE + 10.1)
    assert len(await queued(memory)) == 1


async def test_a_new_catch_up_schedule_fires_only_its_latest_due_tick(
    memory: MemoryDriver, caplog: pytest.LogCaptureFixture
) -> None:
    """No tick on record: those of the grace period before its first start were not missed
    (it did not run yet), so catch_up does not fire them all at once."""
    sched = scheduler(memory, every_ten(catch_up=True), grace=60)
    with caplog.at_level(logging.INFO, "asynctasq.schedules"):
        await sched.run_once(BASE + 30.5)
    assert len(await queued(memory)) == 1
    assert await read_last(memory, "beat") == BASE + 30
    assert "skipped" not in caplog.text and "first run" in caplog.text
    await sched.run_once(BASE + 40.1)
    assert len(await queued(memory)) == 1  # and ticks from then on, as usual


async def test_a_replica_joining_after_a_first_run_fires_nothing_from_before_it(
    memory: MemoryDriver,
) -> None:
    """The first run fired only its latest tick; the ticks before it were never due (the
    schedule did not exist), so a replica starting later must not catch them up."""
    await scheduler(memory, every_ten(catch_up=True), holder="first").run_once(BASE + 30.5)
    assert len(await queued(memory)) == 1
    joining = scheduler(memory, every_ten(catch_up=True), holder="joining")
    await joining.run_once(BASE + 31)
    assert await queued(memory) == []
    await joining.run_once(BASE + 40.1)
    assert [e["args"] for e in await queued(memory)] == [["beat"]]


async def test_a_new_interval_catches_up_only_after_the_last_tick_fired(
    memory: MemoryDriver,
) -> None:
    """A redeploy from every 10 s to every 3 s: the new grid's ticks before the last one
    fired were never due."""
    await scheduler(memory, every_ten(catch_up=True), holder="old").run_once(BASE + 30.5)
    assert len(await queued(memory)) == 1
    registry._schedules.clear()  # the next deploy's declaration
    faster = schedule(beat("beat"), every(seconds=3), name="beat", catch_up=True)
    await scheduler(memory, faster, holder="new").run_once(BASE + 36.5)
    assert len(await queued(memory)) == 2  # BASE+33 and BASE+36


async def test_a_last_tick_far_ahead_is_taken_for_none(memory: MemoryDriver) -> None:
    await memory.claim(last_key("beat"), str(BASE + 10**9), 3600)  # forged, or a wild clock
    sched = scheduler(memory, every_ten(catch_up=True))
    await sched.run_once(BASE + 0.5)  # as a first run: the latest due tick only
    await sched.run_once(BASE + 10.5)
    assert len(await queued(memory)) == 2


async def test_a_scheduler_that_slept_past_the_grace_period_skips_what_it_missed(
    memory: MemoryDriver, caplog: pytest.LogCaptureFixture
) -> None:
    sched = scheduler(memory, every_ten(catch_up=True), grace=15)
    await sched.run_once(BASE + 0.1)
    assert len(await queued(memory)) == 1  # BASE: the first run fires only the latest
    with caplog.at_level(logging.WARNING, "asynctasq.schedules"):
        await sched.run_once(BASE + 1000.1)  # a suspended process: 99 ticks went by
    assert len(await queued(memory)) == 2  # BASE+990 and BASE+1000 only
    assert "older than the grace period" in caplog.text


async def test_ticks_another_replica_fired_are_not_reported_as_missed(
    memory: MemoryDriver, caplog: pytest.LogCaptureFixture
) -> None:
    steady = scheduler(memory, every_ten(), holder="steady")
    for n in range(4):
        await steady.run_once(BASE + 10 * n + 0.1)
    newcomer = scheduler(memory, every_ten(), holder="newcomer")
    caplog.clear()  # the steady one reported the ticks before it started
    with caplog.at_level(logging.WARNING, "asynctasq.schedules"):
        await newcomer.run_once(BASE + 30.5)
    assert len(await queued(memory)) == 4
    assert "skipped" not in caplog.text


async def test_a_failed_dispatch_gives_the_tick_back_and_retries_it(
    memory: MemoryDriver, caplog: pytest.LogCaptureFixture
) -> None:
    class Flaky(MemoryDriver):
        failures = 1

        async def enqueue(self, message: OutgoingMessage) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("broker away")
            await super().enqueue(message)

    driver = Flaky()
    sched = scheduler(driver, every_ten())
    with caplog.at_level(logging.WARNING, "asynctasq.schedules"):
        wake = await sched.run_once(BASE + 0.1)
    assert "broker away" in caplog.text
    assert await driver.read_claim(tick_key("beat", BASE)) is None  # given back
    assert BASE + 0.1 < wake <= BASE + 1
    assert await sched.run_once(wake) == BASE + 10
    assert len(await queued(driver)) == 1


async def test_a_schedule_removed_from_the_code_stops_firing(memory: MemoryDriver) -> None:
    kept, removed = every_ten("kept"), every_ten("removed")
    old = scheduler(memory, kept, removed)
    await old.run_once(BASE + 0.1)
    assert await read_last(memory, "removed") == BASE
    assert registry.remove("removed")
    # The new code runs: only the schedules it declares are read or fired.
    new = scheduler(memory, *registry.schedules(), holder="w2")
    for n in range(1, 4):
        await new.run_once(BASE + 10 * n + 0.1)
    labels = [e["args"][0] for e in await queued(memory)]
    assert labels.count("removed") == 1 and labels.count("kept") == 4
    assert await read_last(memory, "removed") == BASE
    assert await memory.read_claim(tick_key("removed", BASE + 10)) is None


async def test_the_last_tick_is_advanced_past_an_unreadable_value(memory: MemoryDriver) -> None:
    await memory.claim(last_key("beat"), "\x1b[2Jnot a tick", 600)
    sched = scheduler(memory, every_ten())
    await sched.run_once(BASE + 0.1)
    assert await read_last(memory, "beat") == BASE
    # A replica that lags never moves it back.
    await memory.claim(last_key("beat"), str(BASE + 100), 600, replace=str(BASE))
    await sched.run_once(BASE + 10.1)
    assert await read_last(memory, "beat") == BASE + 100


async def test_fired_ticks_are_published_as_events(memory: MemoryDriver) -> None:
    sched = scheduler(memory, every_ten(), events=True)
    await sched.run_once(BASE + 0.1)
    entries, _ = await memory.read_log(events.LOG, None, wait=0)
    fired = [e for e in map(Event.decode, entries) if e and e.type == EventType.SCHEDULE_FIRED]
    assert len(fired) == 1
    assert fired[0].data == {"schedule": "beat", "tick": BASE}
    assert fired[0].worker == "w1" and fired[0].task_id


async def test_the_task_call_keeps_its_settings_and_class_tasks_work(
    memory: MemoryDriver,
) -> None:
    routed = schedule(beat("routed").on_queue("elsewhere"), every(seconds=10), name="routed")
    nightly = schedule(Nightly(region="us"), every(seconds=10), name="nightly")
    await scheduler(memory, routed, nightly).run_once(BASE + 0.1)
    assert [e["args"] for e in await queued(memory, "elsewhere")] == [["routed"]]
    assert [e["attrs"] for e in await queued(memory)] == [{"region": "us"}]


def test_a_driver_without_claims_is_refused_with_the_drivers_that_have_them() -> None:
    class NoClaims(MemoryDriver):
        claim = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="redis, postgres, mysql, sqlite"):
        Scheduler(NoClaims(), [], holder="w", grace=60)


async def test_a_worker_without_claims_fails_at_start() -> None:
    class NoClaims(MemoryDriver):
        claim = None  # type: ignore[assignment]

    worker = Worker(NoClaims(), queues=[QUEUE], schedules=True, install_signal_handlers=False)
    with pytest.raises(TypeError, match="keeps claims"):
        await asyncio.wait_for(worker.run(), 10)


async def test_a_worker_with_schedules_runs_them(memory: MemoryDriver) -> None:
    every_second = schedule(beat("tick"), every(seconds=1), name="every-second")
    assert registry.schedules() == [every_second]
    worker = Worker(
        memory, queues=[QUEUE], schedules=True, install_signal_handlers=False, poll_wait=0.1
    )
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 20
    while runs.count("tick") < 2 and time.monotonic() < deadline and not runner.done():
        await asyncio.sleep(0.05)
    worker.request_stop()
    await asyncio.wait_for(runner, 15)
    assert runs.count("tick") >= 2
    assert await read_last(memory, "every-second") is not None


async def test_a_worker_without_schedules_starts_no_scheduler(memory: MemoryDriver) -> None:
    schedule(beat("tick"), every(seconds=1), name="every-second")
    worker = Worker(memory, queues=[QUEUE], install_signal_handlers=False, poll_wait=0.1)
    runner = asyncio.create_task(worker.run())
    await asyncio.sleep(1.5)
    assert all(t.get_name() != "asynctasq-scheduler" for t in asyncio.all_tasks())
    worker.request_stop()
    await asyncio.wait_for(runner, 15)
    assert runs == []


async def test_stopping_wakes_a_sleeping_scheduler(memory: MemoryDriver) -> None:
    s = schedule(beat("daily"), every(days=1), name="daily")
    sched = scheduler(memory, s)
    stop = asyncio.Event()
    sched.start(stop)
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await sched.stop()
    assert stop.is_set()
    assert time.monotonic() - started < MAX_SLEEP
