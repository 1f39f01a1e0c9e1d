"""Concurrency and rate limits on the in-memory driver: declaration, messages, the worker's
gate (overlap, keys, waits that are no attempts, leases, renewal, rates) and drivers
without claims."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from base_only_driver import PlainDriver

from asynctasq import Task, dispatch_many, task
from asynctasq.core import envelope
from asynctasq.core.limit_keys import limit_store
from asynctasq.core.limiter import RateGuesses, reserve_start
from asynctasq.core.limits import Rate, from_wire, parse_rate
from asynctasq.drivers.base import (
    Driver,
    OutgoingMessage,
)
from asynctasq.drivers.connections import get_driver
from asynctasq.errors import LimitsNotSupportedError, MalformedMessageError
from asynctasq.testing import MemoryDriver
from asynctasq.worker import Worker
from asynctasq.worker.limits import DEFER_CAP, RATE_WAIT_CAP, defer_delay

Q = "limits"


class Overlap:
    """Runs in flight now, the most seen at once, and every start time."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.starts: list[float] = []
        self.attempts: list[int] = []

    async def run(self, seconds: float, attempts: int = 0) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        self.starts.append(time.time())
        self.attempts.append(attempts)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1


seen: dict[str, Overlap] = {}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    seen.clear()


def overlap(key: str) -> Overlap:
    return seen.setdefault(key, Overlap())


async def work(
    until: Callable[[], bool], *, workers: int = 1, timeout: float = 20.0, **kwargs: Any
) -> list[Worker]:
    """Run `workers` workers on the configured memory driver until `until()` holds."""
    kwargs.setdefault("install_signal_handlers", False)
    kwargs.setdefault("poll_wait", 0.05)
    kwargs.setdefault("queues", [Q])
    driver = await get_driver()
    crew = [Worker(driver, **kwargs) for _ in range(workers)]
    runners = [asyncio.create_task(w.run()) for w in crew]
    deadline = time.monotonic() + timeout
    try:
        while not until():
            for runner in runners:
                if runner.done():
                    runner.result()
            assert time.monotonic() < deadline, f"not reached in {timeout} s: {seen}"
            await asyncio.sleep(0.02)
    finally:
        for w in crew:
            w.request_stop()
        await asyncio.wait_for(asyncio.gather(*runners), 20)
    return crew


async def memory() -> MemoryDriver:
    driver = await get_driver()
    assert isinstance(driver, MemoryDriver)
    return driver


# -- tasks -----------------------------------------------------------------------------------------
@task(queue=Q, concurrency_limit=2)
async def two_at_once(n: int) -> None:
    await overlap("two").run(0.03)


@task(queue=Q, concurrency_limit=1, limit_key="customer")
async def per_customer(customer: str, n: int) -> None:
    await overlap(customer).run(0.03)
    await overlap("all").run(0)


@task(queue=Q, concurrency_limit=1, max_attempts=1)
async def one_run_each(n: int) -> None:
    await overlap("once").run(0.01)


@task(queue=Q, concurrency_limit=1, limit_lease=1.0)
async def short_lease(n: int) -> None:
    await overlap("lease").run(2.5 if n == 0 else 0.0)


@task(queue=Q, rate_limit="10/s")
async def ten_a_second(n: int) -> None:
    await overlap("rate").run(0)


@task(queue=Q, concurrency_limit=1, limit_key=lambda host, urgent=False: None if urgent else host)
async def call_host(host: str, urgent: bool = False) -> None: ...


@task(queue=Q, concurrency_limit=5, max_attempts=2, retry_delay=0)
async def always_fails(n: int) -> None:
    await overlap("fails").run(0)
    raise RuntimeError("boom")


class Exporter(Task[None]):
    queue = Q
    concurrency_limit = 1
    rate_limit = "100/m"
    limit_key = "account"

    def __init__(self, account: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account = account

    async def handle(self) -> None:
        await overlap("export").run(0.01, self._attempts)


# -- declaring -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "count", "per"),
    [("100/m", 100, 60.0), ("5/s", 5, 1.0), ("1000/h", 1000, 3600.0), ("10/15m", 10, 900.0),
     ("2/d", 2, 86400.0), (" 3 / 0.5s ", 3, 0.5)],
)  # fmt: skip
def test_rates_parse(text: str, count: int, per: float) -> None:
    assert parse_rate(text) == Rate(count, per)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"concurrency_limit": 0}, "concurrency_limit must be 1 to 1000, got 0"),
        ({"concurrency_limit": -2}, "concurrency_limit must be 1 to 1000"),
        ({"concurrency_limit": 1001}, "concurrency_limit must be 1 to 1000"),
        ({"concurrency_limit": True}, "concurrency_limit must be a whole number"),
        ({"concurrency_limit": 2.0}, "concurrency_limit must be a whole number"),
        ({"rate_limit": "100"}, "rate_limit must look like '100/m'"),
        ({"rate_limit": "100/x"}, "rate_limit must look like '100/m'"),
        ({"rate_limit": 100}, "rate_limit must look like '100/m'"),
        ({"rate_limit": "0/s"}, "rate_limit count must be 1 to"),
        ({"rate_limit": "1/8d"}, "period must be 1 ms to a week"),
        ({"rate_limit": "5/0s"}, "period must be 1 ms to a week"),
        ({"limit_key": "n"}, "limit_key needs concurrency_limit or rate_limit"),
        ({"limit_lease": 5}, "limit_lease needs concurrency_limit or rate_limit"),
        ({"concurrency_limit": 1, "limit_key": "nope"}, "limit_key 'nope' is not one of its"),
        ({"concurrency_limit": 1, "limit_key": "a b"}, "limit_key must be a function"),
        ({"concurrency_limit": 1, "limit_lease": 0.5}, "limit_lease must be 1 to 86400"),
        ({"concurrency_limit": 1, "limit_lease": float("nan")}, "limit_lease must be a number"),
    ],
)
def test_bad_declarations_fail_at_the_decorator(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):

        @task(**settings)
        async def limited(n: int) -> None: ...


def test_bad_class_attributes_name_the_class() -> None:
    with pytest.raises(ValueError, match=r"Broken.concurrency_limit: concurrency_limit must"):

        class Broken(Task[None]):
            concurrency_limit = 0

            async def handle(self) -> None: ...

    with pytest.raises(ValueError, match=r"Keyless: limit_key needs concurrency_limit"):

        class Keyless(Task[None]):
            limit_key = "account"

            async def handle(self) -> None: ...


# -- messages --------------------------------------------------------------------------------------
def _doc(task_: Any) -> dict[str, Any]:
    from asynctasq.core.dispatch import prepare

    return orjson.loads(prepare(task_).payload)  # type: ignore[no-any-return]


def test_a_message_carries_its_limit_key_and_numbers() -> None:
    assert _doc(two_at_once(1))["l"] == {"k": f"limit:{two_at_once.name}", "c": 2, "t": 30.0}
    keyed = _doc(per_customer("acme", 1))["l"]
    assert keyed["k"] == f"limit:{per_customer.name}:acme"
    assert _doc(Exporter("a-1"))["l"] == {
        "k": f"limit:{Exporter._task_name}:a-1",
        "c": 1,
        "r": [100, 60.0],
        "t": 30.0,
    }
    assert _doc(call_host("api.example.com"))["l"]["k"].endswith(":api.example.com")
    assert "l" not in _doc(call_host("x", urgent=True))  # the key function said: not limited
    decoded = envelope.decode(orjson.dumps(_doc(Exporter("a-1"))))
    assert decoded.limits is not None and decoded.limits.rate == Rate(100, 60.0)


def test_a_long_or_odd_key_is_hashed_within_bounds() -> None:
    key = _doc(per_customer("x" * 2000, 1))["l"]["k"]
    assert key.startswith(f"limit:{per_customer.name}:#") and len(key) < 480
    assert _doc(per_customer("bell\x07", 1))["l"]["k"].startswith(f"limit:{per_customer.name}:#")


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ([1], "not an object"),
        ({"k": "unique:x", "c": 1, "t": 30}, "not a limit key"),
        ({"k": "limit:" + "x" * 600, "c": 1, "t": 30}, "not a limit key"),
        ({"k": "limit:a\x00", "c": 1, "t": 30}, "not a limit key"),
        ({"k": "limit:a\ud800", "c": 1, "t": 30}, "not valid UTF-8"),
        ({"k": "limit:a", "c": 10**9, "t": 30}, "concurrency limit is not 1 to 1000"),
        ({"k": "limit:a", "c": True, "t": 30}, "concurrency limit is not 1 to 1000"),
        ({"k": "limit:a", "r": [10**9, 1], "t": 30}, "rate limit is not"),
        ({"k": "limit:a", "r": [1, -1], "t": 30}, "rate limit is not"),
        ({"k": "limit:a", "r": [1, 1, 1], "t": 30}, "rate limit is not"),
        ({"k": "limit:a", "t": 30}, "neither a concurrency limit nor a rate limit"),
        ({"k": "limit:a", "c": 1, "t": 0.001}, "lease is not"),
        ({"k": "limit:a", "c": 1, "t": 30, "zz": 1}, "not an object of k, c, r and t"),
    ],
)
def test_hostile_limits_are_refused(limits: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        from_wire(limits)
    doc = _doc(two_at_once(1))
    doc["l"] = limits
    # (orjson refuses lone surrogates even in \u escapes: such bytes never get this far)
    with pytest.raises(MalformedMessageError, match=r"malformed limits \('l'\)|not valid JSON"):
        envelope.decode(json.dumps(doc).encode())


async def test_a_hostile_limit_is_dead_lettered_unrun() -> None:
    from asynctasq.core.dispatch import prepare

    message = prepare(two_at_once(1))
    doc = orjson.loads(message.payload)
    doc["l"]["c"] = 10**6
    driver = await memory()
    await driver.enqueue(
        OutgoingMessage(message.task_id, Q, orjson.dumps(doc), visibility_timeout=30)
    )
    await work(lambda: bool(driver.dead_letters(Q)))
    assert "malformed limits" in driver.dead_letters(Q)[0].failure.message
    assert seen == {}


# -- the gate --------------------------------------------------------------------------------------
async def test_two_workers_never_run_more_than_the_limit_at_once() -> None:
    for n in range(30):
        await two_at_once(n).dispatch()
    crew = await work(lambda: len(overlap("two").starts) == 30, workers=2, concurrency=10)
    assert overlap("two").most == 2
    assert sum(w.stats.deferred for w in crew) > 0  # the limit was full, and runs waited
    assert sum(w.stats.processed for w in crew) == 30  # waits are not counted as processed
    driver = await memory()
    assert driver.dead_letters(Q) == [] and driver.queued(Q) == []


async def test_a_keyed_limit_holds_per_key_only() -> None:
    for n in range(8):
        await per_customer("acme", n).dispatch()
        await per_customer("globex", n).dispatch()
    await work(lambda: len(overlap("all").starts) == 16, concurrency=10)
    assert overlap("acme").most == 1 and overlap("globex").most == 1
    assert max(overlap("acme").starts) > min(overlap("globex").starts)  # keys ran side by side


async def test_waiting_is_no_attempt_a_single_run_task_runs_every_instance() -> None:
    for n in range(12):
        await one_run_each(n).dispatch()
    crew = await work(lambda: len(overlap("once").starts) == 12, workers=2, concurrency=6)
    assert crew[0].stats.deferred + crew[1].stats.deferred > 0
    assert (await memory()).dead_letters(Q) == []


async def test_attempts_seen_by_a_task_exclude_its_waits() -> None:
    driver = await memory()
    # The account's slot is held (by a run elsewhere) while the task is dispatched: it waits.
    slot = f"limit:{Exporter._task_name}:a-2:c0"
    assert await driver.claim(slot, "elsewhere", 60) is None
    await Exporter("a-2").dispatch()
    worker = Worker(driver, queues=[Q], install_signal_handlers=False, poll_wait=0.05)
    runner = asyncio.create_task(worker.run())
    try:
        while worker.stats.deferred < 3:
            assert not runner.done()
            await asyncio.sleep(0.05)
        assert overlap("export").starts == []
        await driver.release_claim(slot, "elsewhere")
        while not overlap("export").starts:
            await asyncio.sleep(0.05)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 20)
    assert overlap("export").attempts == [0]


async def test_a_dead_holders_slot_returns_after_its_lease() -> None:
    driver = await memory()
    slot = f"limit:{short_lease.name}:c0"
    # A worker that died holding the slot: nobody renews its claim.
    assert await driver.claim(slot, "dead-worker/1", 1.0) is None
    freed_at = time.time() + 1.0
    await short_lease(1).dispatch()
    await work(lambda: len(overlap("lease").starts) == 1)
    assert overlap("lease").starts[0] >= freed_at - 0.05


async def test_a_running_slot_is_renewed_past_its_lease() -> None:
    # The first run lasts 2.5 leases: renewals keep its slot, so the second waits for it.
    await short_lease(0).dispatch()
    await short_lease(1).dispatch()
    await work(lambda: len(overlap("lease").starts) == 2 and overlap("lease").now == 0)
    first, second = overlap("lease").starts
    assert overlap("lease").most == 1
    assert second >= first + 2.5


async def test_a_rate_limit_spaces_every_start() -> None:
    for n in range(15):
        await ten_a_second(n).dispatch()
    await work(lambda: len(overlap("rate").starts) == 15, workers=2, concurrency=10)
    starts = sorted(overlap("rate").starts)
    # Reserved starts are 0.1 s apart, so 11 starts span a second; a run may begin a little
    # after its reserved moment (a busy loop), hence the slack. Unlimited, they would all
    # start within milliseconds.
    for first, eleventh in zip(starts, starts[10:], strict=False):
        assert eleventh - first >= 1.0 - 0.1


async def test_reservations_cost_one_round_trip_once_the_state_is_known() -> None:
    driver = await memory()
    calls: list[str | None] = []
    claim = driver.claim

    async def counted(key: str, holder: str, ttl: float, *, replace: str | None = None) -> Any:
        calls.append(replace)
        return await claim(key, holder, ttl, replace=replace)

    driver.claim = counted  # type: ignore[method-assign]
    guesses = RateGuesses()
    rate = Rate(1000, 1.0)
    first = await reserve_start(driver, "limit:t:r", rate, guesses)
    second = await reserve_start(driver, "limit:t:r", rate, guesses)
    assert first.taken and second.taken and len(calls) == 2
    other = RateGuesses()  # another worker: its first guess is wrong, its second right
    assert (await reserve_start(driver, "limit:t:r", rate, other)).taken
    assert len(calls) == 4


async def test_a_garbage_rate_state_is_replaced() -> None:
    driver = await memory()
    for junk in ("nan", "not a number", "1e300", "-inf"):
        current = await driver.read_claim("limit:junk:r")
        await driver.claim("limit:junk:r", junk, 60, replace=current)
        reservation = await reserve_start(driver, "limit:junk:r", Rate(1, 60.0), RateGuesses())
        assert reservation.taken and reservation.wait < 1.0


@pytest.mark.parametrize("forged", ["\u00b2", "12\u0663", "-1", "not a count", "9" * 40])
async def test_a_forged_wait_count_neither_loops_nor_spares_a_task(forged: str) -> None:
    """Whoever can write to the broker can write a task's wait count. A count that is no
    plain number ("\u00b2" passes `str.isdigit` and fails `int`) reads as no waits: the
    failing task still runs out of attempts and is dead-lettered with its error."""
    driver = await memory()
    task_id = await always_fails(1).dispatch()
    assert await driver.claim(f"deferred:{task_id}", forged, 3600) is None
    await work(lambda: bool(driver.dead_letters(Q)), timeout=10)
    assert len(overlap("fails").starts) == 2
    assert driver.dead_letters(Q)[0].failure.message == "boom"


def test_waits_back_off_with_jitter_and_are_bounded() -> None:
    for waits in range(1, 40):
        delay = defer_delay(waits, 0.0, rate_limited=False)
        assert 0 < delay <= DEFER_CAP
    assert {round(defer_delay(3, 0.0, False), 6) for _ in range(20)} != {0.4}  # jittered
    assert defer_delay(1, 30.0, rate_limited=True) >= 30.0
    assert defer_delay(1, 10**6, rate_limited=True) == RATE_WAIT_CAP


# -- drivers without claims ------------------------------------------------------------------------
async def test_a_driver_without_claims_is_refused_naming_those_with() -> None:
    plain = PlainDriver(await memory())
    assert isinstance(plain, Driver)
    with pytest.raises(LimitsNotSupportedError, match=r"cannot hold the claims .*; use a driver"):
        limit_store(plain, "app:task")
    assert limit_store(await memory(), "app:task") is not None


async def test_a_worker_without_claims_dead_letters_a_limited_message_unrun() -> None:
    inner = await memory()
    await two_at_once(1).dispatch()
    worker = Worker(PlainDriver(inner), queues=[Q], install_signal_handlers=False, poll_wait=0.05)
    runner = asyncio.create_task(worker.run())
    try:
        while not inner.dead_letters(Q):
            assert not runner.done()
            await asyncio.sleep(0.02)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 10)
    assert "LimitsNotSupportedError" in inner.dead_letters(Q)[0].failure.exception_type
    assert seen == {}


async def test_dispatch_to_a_driver_without_claims_is_refused_and_queues_nothing() -> None:
    inner = MemoryDriver(namespace="limits-plain")
    plain = PlainDriver(inner)

    @task(queue=Q, concurrency_limit=1, driver=plain)
    async def on_plain(n: int) -> None: ...

    with pytest.raises(LimitsNotSupportedError, match="use a driver"):
        await on_plain(1).dispatch()
    with pytest.raises(LimitsNotSupportedError, match="use a driver"):
        await dispatch_many([on_plain(2)])
    assert inner.queued() == []
