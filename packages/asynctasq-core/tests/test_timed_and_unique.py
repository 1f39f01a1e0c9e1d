"""Absolute ETAs, expiry and unique tasks, on the in-memory driver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from base_only_driver import PlainDriver

import asynctasq
from asynctasq import Task, dispatch_many, task
from asynctasq.core import envelope, expired_counts
from asynctasq.drivers.base import Driver, OutgoingMessage
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import (
    AsyncTasQError,
    MalformedMessageError,
    TaskExpiredError,
    TaskFailedError,
    UniqueNotSupportedError,
)
from asynctasq.lifecycle.events import Event, EventType
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker

runs: dict[str, list[Any]] = {}


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    runs.clear()


def ran(key: str, value: Any = None) -> None:
    runs.setdefault(key, []).append(value)


async def memory() -> MemoryDriver:
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    return driver


async def work(until: Callable[[], bool], timeout: float = 10.0, **kwargs: Any) -> Worker:
    """Run a worker on the configured memory driver until `until()` holds."""
    kwargs.setdefault("install_signal_handlers", False)
    kwargs.setdefault("poll_wait", 0.05)
    kwargs.setdefault("queues", ["tu"])
    worker = Worker(await get_driver(), **kwargs)
    runner = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    while not until():
        if runner.done():
            runner.result()
        assert time.monotonic() < deadline, f"not reached in {timeout} s; runs={runs}"
        await asyncio.sleep(0.02)
    worker.request_stop()
    await asyncio.wait_for(runner, 10)
    return worker


def decoded(message_payload: bytes) -> envelope.Envelope:
    return envelope.decode(message_payload)


# -- tasks ---------------------------------------------------------------------------------------
@task(queue="tu")
async def stamp(key: str) -> None:
    ran(key, time.time())


@task(queue="tu", expires=0.2)
async def perishable(key: str) -> None:
    ran(key)


@task(queue="tu", expires=0.2, track=True)
async def tracked_perishable(key: str) -> None:
    ran(key)


@task(queue="tu", expires=0.2, on_expiry="drop", keep_result=True)
async def droppable(key: str) -> None:
    ran(key)


@task(queue="tu", expires=0.6, max_attempts=3, retry_delay=1.0)
async def fails_then_expires(key: str) -> None:
    ran(key)
    raise ConnectionError("first run fails")


@task(queue="tu", unique=True)
async def report(user: int, kind: str = "daily", tags: frozenset[str] = frozenset()) -> None:
    ran(f"report-{user}")


@task(queue="tu", unique_key="user", unique_for=60)
async def sync_user(user: int, attempt: int) -> None:
    ran(f"sync-{user}", attempt)


@task(queue="tu", unique_key=lambda order, urgent=False: None if urgent else f"order-{order}")
async def ship(order: int, urgent: bool = False) -> None:
    ran("ship", order)


@task(queue="tu", unique=True, unique_for=0.3)
async def short_lock(n: int) -> None:
    ran("short", n)


@task(queue="tu", unique=True, max_attempts=1)
async def unique_failing(n: int) -> None:
    ran("unique-failing", n)
    raise ValueError("no")


@task(queue="tu", unique=True, max_attempts=2, retry_delay=0.5)
async def unique_flaky(n: int) -> None:
    ran("unique-flaky", n)
    if len(runs["unique-flaky"]) == 1:
        raise ConnectionError("first run fails")


@task(queue="tu", unique=True, expires=0.2)
async def unique_perishable(n: int) -> None:
    ran("unique-perishable", n)


class Invoice(Task[None]):
    queue = "tu"
    expires = 0.2

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    async def handle(self) -> None:
        ran("invoice", self.number)


class Mailing(Task[None]):
    queue = "tu"
    unique = True

    def __init__(self, list_id: int, subject: str) -> None:
        super().__init__()
        self.list_id = list_id
        self.subject = subject

    def unique_key(self) -> str:
        return f"list-{self.list_id}"

    async def handle(self) -> None:
        ran("mailing", self.subject)


class Digest(Task[None]):
    queue = "tu"
    unique_key = "user"

    def __init__(self, user: int, note: str) -> None:
        super().__init__()
        self.user = user
        self.note = note

    async def handle(self) -> None:
        ran("digest", self.note)


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


# -- ETA -----------------------------------------------------------------------------------------
async def test_an_aware_eta_runs_no_earlier_than_it() -> None:
    eta = soon(0.5)
    await stamp("eta").at(eta).dispatch()
    await stamp("eta-delay").delay(soon(0.5)).dispatch()
    (message,) = [m for m in (await memory()).queued("tu") if m.state == "delayed"][:1]
    assert message.state == "delayed"
    await work(lambda: len(runs) == 2)
    assert runs["eta"][0] >= eta.timestamp()


async def test_an_eta_in_another_zone_is_the_same_instant() -> None:
    from zoneinfo import ZoneInfo

    eta = soon(0.4).astimezone(ZoneInfo("Asia/Kolkata"))
    await stamp("zoned").at(eta).dispatch()
    await work(lambda: "zoned" in runs)
    assert runs["zoned"][0] >= eta.timestamp()


async def test_a_past_eta_runs_at_once() -> None:
    await stamp("past").at(datetime.now(UTC) - timedelta(hours=3)).dispatch()
    (message,) = (await memory()).queued("tu")
    assert message.state == "ready"
    await work(lambda: "past" in runs)


async def test_a_naive_datetime_is_refused_at_the_call_naming_the_fix() -> None:
    naive = datetime.now() + timedelta(minutes=5)
    for call in (lambda: stamp("n").at(naive), lambda: stamp("n").delay(naive)):
        with pytest.raises(ValueError, match=r"naive datetime .*attach a timezone"):
            call()
    with pytest.raises(ValueError, match="naive"):
        Invoice(1).at(naive)
    with pytest.raises(ValueError, match="timezone-aware datetime"):
        stamp("n").at(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ten years"):
        stamp("n").at(datetime.now(UTC) + timedelta(days=3700))
    assert (await memory()).queued() == []


async def test_class_tasks_take_an_eta_and_a_timedelta_delay() -> None:
    await Invoice(7).expires(60).at(soon(0.3)).dispatch()
    await stamp("td").delay(timedelta(milliseconds=300)).dispatch()
    states = sorted(m.state for m in (await memory()).queued("tu"))
    assert states == ["delayed", "delayed"]
    await work(lambda: "invoice" in runs and "td" in runs)


async def test_a_seconds_delay_is_unchanged() -> None:
    await stamp("f").delay(5).dispatch()
    (message,) = (await memory()).queued("tu")
    assert message.state == "delayed"
    assert b'"x"' not in message.payload and b'"u"' not in message.payload


# -- expiry --------------------------------------------------------------------------------------
async def test_an_expired_task_is_dead_lettered_with_the_reason_and_not_run() -> None:
    task_id = await perishable("late").dispatch()
    fresh = await perishable("fresh").expires(60).dispatch()
    await asyncio.sleep(0.3)
    driver = await memory()
    worker = await work(lambda: "fresh" in runs and bool(driver.dead_letters()))
    assert "late" not in runs
    (dead,) = driver.dead_letters()
    assert dead.task_id == task_id and dead.task_id != fresh
    assert dead.failure.exception_type == "asynctasq.errors.TaskExpiredError"
    assert "expired at" in dead.failure.message and "not run" in dead.failure.message
    assert worker.stats.expired == 1 and worker.stats.succeeded == 1
    assert await expired_counts.read_expired(driver, ["tu", "other"]) == [1, 0]
    # A queue name in the registry no dispatch accepts (written behind the driver's back)
    # has no counter, and costs the others nothing.
    assert await expired_counts.read_expired(driver, ["x" * 5000, "tu"]) == [0, 1]


async def test_a_dropped_expired_task_is_acked_counted_and_its_result_says_expired() -> None:
    task_id = await droppable("gone").dispatch()
    await asyncio.sleep(0.3)
    driver = await memory()
    worker = await work(lambda: driver.idle("tu"))
    assert "gone" not in runs
    assert driver.dead_letters() == [] and driver.queued() == []
    assert worker.stats.expired == 1 and worker.stats.dead_lettered == 0
    with pytest.raises(TaskFailedError, match="TaskExpiredError"):
        await task_id.result(timeout=1)
    await asyncio.sleep(0.3)  # the counter is written in batches
    assert await expired_counts.read_expired(driver, ["tu"]) == [1]


async def test_expiry_as_a_class_attribute_a_chain_method_and_a_datetime() -> None:
    await Invoice(1).dispatch()
    await stamp("chained").expires(0.2).dispatch()
    await stamp("moment").expires(soon(0.2)).dispatch()
    await stamp("later").expires(timedelta(minutes=1)).dispatch()
    await asyncio.sleep(0.3)
    driver = await memory()
    await work(lambda: "later" in runs and len(driver.dead_letters()) == 3)
    assert set(runs) == {"later"}


async def test_a_task_that_expires_while_waiting_for_its_retry_expires_at_its_next_delivery() -> (
    None
):
    await fails_then_expires("r").dispatch()
    driver = await memory()
    await work(lambda: bool(driver.dead_letters()))
    assert runs["r"] == [None]  # ran once; the retry came after the expiry
    (dead,) = driver.dead_letters()
    assert dead.failure.exception_type.endswith("TaskExpiredError")


async def test_a_tracked_expired_task_is_expired_with_an_event() -> None:
    task_id = await tracked_perishable("tracked").dispatch()
    await asyncio.sleep(0.3)
    driver = await memory()
    cursor = await driver.log_tail("events")
    await work(lambda: bool(driver.dead_letters()), events=True)
    status = await task_id.status()
    assert status is not None and status.state == asynctasq.TaskState.EXPIRED
    assert status.error_type == "TaskExpiredError" and status.finished_at is not None
    entries, _ = await driver.read_log("events", cursor, wait=0)
    kinds = [e.type for e in (Event.decode(raw) for raw in entries) if e is not None]
    assert EventType.TASK_EXPIRED in kinds and EventType.TASK_STARTED not in kinds


async def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="on_expiry needs expires"):
        task(on_expiry="drop")(stamp.fn)
    with pytest.raises(ValueError, match="on_expiry must be"):
        task(expires=1, on_expiry="later")(stamp.fn)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique_for needs unique"):
        task(unique_for=10)(stamp.fn)
    with pytest.raises(ValueError, match="expires must be greater than 0"):
        stamp("x").expires(0)
    with pytest.raises(ValueError, match="naive"):
        stamp("x").expires(datetime.now())
    with pytest.raises(ValueError, match="would expire before it is due"):
        await stamp("x").delay(60).expires(30).dispatch()
    with pytest.raises(ValueError, match="'nobody' is not one of its arguments"):
        task(unique_key="nobody")(stamp.fn)
    assert (await memory()).queued() == []


def _payload(**extra: Any) -> bytes:
    doc = {
        "v": 1,
        "id": "t-1",
        "task": "m:f",
        "at": time.time(),
        "o": [1, 0, "fixed", 0, False, None, 60],
        "args": [],
        "kwargs": {},
        **extra,
    }
    return orjson.dumps(doc)


def test_older_messages_read_as_never_expiring_and_not_unique() -> None:
    env = envelope.decode(_payload())
    assert env.expires_at == 0.0 and not env.drop_expired and env.unique_key is None


@pytest.mark.parametrize(
    "extra",
    [
        {"x": "soon"},
        {"x": -1},
        {"x": 0},
        {"x": 1e12},
        {"x": True},
        {"x": [1]},
        {"x": 100.0, "xd": 2},
        {"x": 100.0, "xd": True},
        {"u": 5},
        {"u": "schedule:nightly:2026"},
        {"u": "unique:" + "k" * 600},
        {"u": "unique:\x00"},
    ],
)
def test_hostile_expiry_and_unique_fields_are_malformed(extra: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessageError):
        envelope.decode(_payload(**extra))


# -- unique --------------------------------------------------------------------------------------
async def test_a_second_dispatch_returns_the_first_id_and_queues_nothing() -> None:
    first = await report(1).dispatch()
    again = await report(user=1, kind="daily").dispatch()  # by name, default given
    other = await report(2).dispatch()
    weekly = await report(1, "weekly").dispatch()
    assert again == first and isinstance(again, asynctasq.TaskId)
    assert len({first, other, weekly}) == 3
    assert len((await memory()).queued("tu")) == 3


async def test_the_key_of_unique_true_ignores_set_order() -> None:
    a = frozenset(f"tag{n}" for n in range(20))
    b = frozenset(sorted(a, reverse=True))
    assert await report(1, tags=a).dispatch() == await report(1, tags=b).dispatch()


async def test_unique_key_by_argument_name_function_and_class_method() -> None:
    assert await sync_user(5, 1).dispatch() == await sync_user(5, 2).dispatch()
    assert await ship(9).dispatch() == await ship(9).dispatch()
    urgent = [await ship(9, urgent=True).dispatch() for _ in range(2)]  # None: not unique
    assert urgent[0] != urgent[1]
    assert await Mailing(3, "a").dispatch() == await Mailing(3, "b").dispatch()
    assert await Digest(4, "a").dispatch() == await Digest(4, "b").dispatch()
    assert await Digest(5, "a").dispatch() != await Digest(4, "c").dispatch()
    assert len((await memory()).queued("tu")) == 7
    driver = await memory()
    assert await driver.read_claim(f"unique:{sync_user.name}:5") is not None


async def test_concurrent_dispatches_of_one_key_queue_exactly_one() -> None:
    ids = await asyncio.gather(*(report(77).dispatch() for _ in range(50)))
    assert len(set(ids)) == 1
    assert len((await memory()).queued("tu")) == 1


async def test_the_key_is_released_after_success_and_after_dead_letter() -> None:
    driver = await memory()
    first = await report(1).dispatch()
    await work(lambda: "report-1" in runs and driver.idle("tu"))
    await asyncio.sleep(0.05)  # released in the background
    assert await report(1).dispatch() != first
    failing = await unique_failing(1).dispatch()
    await work(lambda: bool(driver.dead_letters()))
    await asyncio.sleep(0.05)
    assert await unique_failing(1).dispatch() != failing


async def test_a_retry_keeps_the_key_and_an_expiry_releases_it() -> None:
    driver = await memory()
    first = await unique_flaky(1).dispatch()

    def retrying() -> bool:
        return len(runs.get("unique-flaky", [])) == 1 and not driver.in_flight()

    worker = Worker(driver, queues=["tu"], install_signal_handlers=False, poll_wait=0.05)
    runner = asyncio.create_task(worker.run())
    try:
        while not retrying():
            await asyncio.sleep(0.02)
        assert await unique_flaky(1).dispatch() == first  # waiting for its retry: still held
        while len(runs["unique-flaky"]) < 2 or not driver.idle("tu"):
            await asyncio.sleep(0.02)
    finally:
        worker.request_stop()
        await runner
    perishable_id = await unique_perishable(1).dispatch()
    await asyncio.sleep(0.3)
    await work(lambda: bool(driver.dead_letters()))
    await asyncio.sleep(0.05)
    assert await unique_perishable(1).dispatch() != perishable_id


async def test_a_worker_never_releases_a_newer_holder() -> None:
    driver = await memory()
    first = await report(1).dispatch()
    key = envelope.decode(driver.queued()[0].payload).unique_key
    assert key is not None and key.startswith(f"unique:{report.name}:#")
    assert await driver.claim(key, "newer-holder", 60, replace=str(first)) is None
    await work(lambda: "report-1" in runs and driver.idle("tu"))
    await asyncio.sleep(0.05)
    assert await driver.read_claim(key) == "newer-holder"


async def test_the_key_frees_itself_after_unique_for() -> None:
    first = await short_lock(1).dispatch()
    assert await short_lock(1).dispatch() == first
    await asyncio.sleep(0.4)
    assert await short_lock(1).dispatch() != first


async def test_a_failed_enqueue_releases_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = await memory()

    async def broken(message: OutgoingMessage) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(driver, "enqueue", broken)
    with pytest.raises(ConnectionError):
        await report(1).dispatch()
    monkeypatch.undo()
    await report(1).dispatch()
    assert len(driver.queued("tu")) == 1


async def test_a_driver_without_claims_is_an_error_at_dispatch_naming_those_with() -> None:
    inner = await memory()
    plain = PlainDriver(inner)
    assert isinstance(plain, Driver)

    @task(queue="tu", unique=True, driver=plain)
    async def on_plain(n: int) -> None: ...

    for dispatch in (lambda: on_plain(1).dispatch(), lambda: dispatch_many([on_plain(1)])):
        with pytest.raises(UniqueNotSupportedError, match=r"cannot hold unique keys; use a"):
            await dispatch()
    assert inner.queued() == []


async def test_a_unique_task_is_refused_inside_a_transaction() -> None:
    with pytest.raises(ValueError, match="cannot be queued inside a transaction"):
        await report(1).dispatch(connection=object())
    assert (await memory()).queued() == []


async def test_dispatch_many_claims_in_order_and_maps_duplicates_to_their_holder() -> None:
    held = await report(1).dispatch()
    ids = await dispatch_many([report(1), report(2), stamp("plain"), report(2), report(3)])
    assert ids[0] == held
    assert ids[3] == ids[1] and len({ids[1], ids[2], ids[4], held}) == 4
    queued = {m.task_id for m in (await memory()).queued("tu")}
    assert queued == {held, ids[1], ids[2], ids[4]}


async def test_dispatch_many_releases_its_claims_when_the_batch_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = await memory()

    async def broken(messages: Sequence[OutgoingMessage]) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(driver, "enqueue_many", broken)
    with pytest.raises(ConnectionError):
        await dispatch_many([report(1), report(2)])
    monkeypatch.undo()
    assert len(set(await dispatch_many([report(1), report(2)]))) == 2
    assert len(driver.queued("tu")) == 2


async def test_a_task_error_in_the_key_function_queues_nothing() -> None:
    @task(queue="tu", unique_key=lambda n: [n])
    async def bad_key(n: int) -> None: ...

    with pytest.raises(TypeError, match="unique_key must return a str or an int"):
        await bad_key(1).dispatch()
    assert (await memory()).queued() == []


def test_expired_error_is_public() -> None:
    assert issubclass(TaskExpiredError, AsyncTasQError)
