"""A broker outage seen from the client: a TCP proxy between driver and broker is cut."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asynctasq import current_task, task
from asynctasq.core.dispatch import prepare
from asynctasq.drivers.base import Delivery, OutgoingMessage
from asynctasq.worker import Worker
from asynctasq_rabbitmq import RabbitMQDriver


def _msg(queue: str) -> OutgoingMessage:
    task_id = str(uuid.uuid4())
    return OutgoingMessage(task_id, queue, task_id.encode())


async def test_worker_survives_an_outage_and_loses_nothing(
    make_driver: Callable[..., RabbitMQDriver], tcp_proxy: Any, rabbitmq_url: str
) -> None:
    driver = make_driver(url=tcp_proxy.url(rabbitmq_url), reconnect_interval=0.2)
    sent = [_msg("outage") for _ in range(10)]
    await driver.enqueue_many(sent)
    held = await driver.dequeue(["outage"], limit=4, wait=2.0)
    assert len(held) == 4
    await driver.ack(held[:1])
    await asyncio.sleep(0.1)

    await tcp_proxy.cut()
    await asyncio.sleep(0.2)  # the client notices the dead socket
    # An enqueue during the outage waits for the reconnect instead of failing.
    late = _msg("outage")
    enqueue = asyncio.create_task(driver.enqueue(late))
    assert await driver.dequeue(["outage"], limit=10, wait=0.5) == []
    # Finished after their lease died with the connection: the broker puts them back, and
    # their copies are acknowledged when they reach this driver, not handed out again.
    finished_late = held[1:3]
    await driver.ack(finished_late)
    await asyncio.sleep(0.5)
    await tcp_proxy.start()
    await asyncio.wait_for(enqueue, 15)

    done: dict[str, Delivery] = {d.task_id: d for d in [held[0], *finished_late]}
    deadline = time.monotonic() + 15
    while len(done) < 11 and time.monotonic() < deadline:
        got = await driver.dequeue(["outage"], limit=10, wait=1.0)
        assert not {d.task_id for d in got} & {d.task_id for d in finished_late}
        await driver.ack(got)
        done.update((d.task_id, d) for d in got)
    assert set(done) == {m.task_id for m in [*sent, late]}
    # The one still unsettled when the connection broke came back, counted once.
    assert done[held[3].task_id].attempts == 1
    assert await driver.dequeue(["outage"], limit=10, wait=0.5) == []
    [stats] = await driver.stats(["outage"])
    assert stats.ready == 0  # the finished ones' copies were acknowledged, not left behind

    # And the consumer is live again: an idle dequeue wakes for a new message.
    waiter = asyncio.create_task(driver.dequeue(["outage"], limit=1, wait=5.0))
    await asyncio.sleep(0.1)
    fresh = _msg("outage")
    started = time.monotonic()
    await driver.enqueue(fresh)
    assert [d.task_id for d in await waiter] == [fresh.task_id]
    assert time.monotonic() - started < 1.0


_runs: list[tuple[str, str, int]] = []


@task(queue="blip", max_attempts=1)
async def blip_task(key: str, seconds: float) -> None:
    _runs.append(("start", key, current_task().attempt))
    await asyncio.sleep(seconds)
    _runs.append(("end", key, current_task().attempt))


@task(queue="blip", max_attempts=1)
async def blip_fails(key: str, seconds: float) -> None:
    _runs.append(("start", key, current_task().attempt))
    await asyncio.sleep(seconds)
    _runs.append(("end", key, current_task().attempt))
    raise ValueError(f"{key} failed on its own")


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_a_lost_connection_neither_reruns_nor_loses_what_the_worker_holds(
    make_driver: Callable[..., RabbitMQDriver],
    tcp_proxy: Any,
    rabbitmq_url: str,
    concurrency: int,
) -> None:
    """The broker puts back every message of a lost connection, counted as a delivery:
    tasks still running here, and tasks buffered here that never started. With one attempt
    each, they used to be dead-lettered as lost (the running ones while they went on to
    succeed), and with free slots a running one ran again beside itself. Each runs once."""
    _runs.clear()
    driver = make_driver(url=tcp_proxy.url(rabbitmq_url), reconnect_interval=0.2)
    # With one slot the running task fails after the cut (its copy reaches the worker only
    # once it has been settled); with three, its copy arrives while it runs.
    long_ones = [blip_task(f"long{n}", 1.5) for n in range(1, concurrency)]
    failing = [blip_fails("long0", 1.5)]
    short_ones = [blip_task(f"short{n}", 0.1) for n in range(3)]
    await driver.enqueue_many([prepare(t) for t in [*failing, *long_ones, *short_ones]])
    worker = _blip_worker(driver, concurrency)
    runner = asyncio.create_task(worker.run())
    try:
        await _until(lambda: ("start", "long0", 0) in _runs, 10)
        await asyncio.sleep(0.3)  # the short ones wait in the buffer (prefetch)
        await tcp_proxy.cut()
        await asyncio.sleep(0.3)
        await tcp_proxy.start()
        keys = {f"long{n}" for n in range(concurrency)} | {f"short{n}" for n in range(3)}
        await _until(lambda: {k for e, k, _ in _runs if e == "end"} >= keys, 20)
        await asyncio.sleep(1.0)  # a copy run again, or dead-lettered, would show by now
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
    starts = sorted(k for e, k, _ in _runs if e == "start")
    assert starts == sorted(keys), _runs
    dead = await driver.list_dead_letters(queue="blip")
    # The one that failed after the cut is dead-lettered once, with its own error.
    assert [d.failure.exception_type for d in dead] == ["builtins.ValueError"]
    assert dead[0].failure.message == "long0 failed on its own"
    assert worker.stats.dead_lettered == 1
    [stats] = await driver.stats(["blip"])
    assert stats.ready == 0


async def _until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out; runs={_runs}"
        await asyncio.sleep(0.02)


@task(queue="blip", max_attempts=2, retry_delay=0)
async def fails_first(key: str) -> None:
    attempt = current_task().attempt
    _runs.append(("start", key, attempt))
    await asyncio.sleep(1.5)
    _runs.append(("end", key, attempt))
    if attempt == 0:
        raise ConnectionError("first run fails")


async def test_a_run_adopted_after_a_lost_connection_keeps_its_count(
    make_driver: Callable[..., RabbitMQDriver], tcp_proxy: Any, rabbitmq_url: str
) -> None:
    """The broker counts the lost connection as a delivery; the run that goes on here is
    still one run: with two attempts it is retried once, and the retry succeeds."""
    _runs.clear()
    driver = make_driver(url=tcp_proxy.url(rabbitmq_url), reconnect_interval=0.2)
    await driver.enqueue(prepare(fails_first("ff")))
    worker = _blip_worker(driver, 3)
    runner = asyncio.create_task(worker.run())
    try:
        await _until(lambda: ("start", "ff", 0) in _runs, 10)
        await tcp_proxy.cut()
        await asyncio.sleep(0.3)
        await tcp_proxy.start()
        await _until(lambda: ("end", "ff", 1) in _runs, 20)
        await _until(lambda: worker.stats.succeeded == 1, 5)
    finally:
        worker.request_stop()
        await asyncio.wait_for(runner, 30)
    assert [(e, a) for e, _, a in _runs] == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]
    assert (worker.stats.retried, worker.stats.dead_lettered) == (1, 0)


def _blip_worker(driver: RabbitMQDriver, concurrency: int) -> Worker:
    return Worker(
        driver,
        queues=["blip"],
        concurrency=concurrency,
        install_signal_handlers=False,
        allowed_roots=[str(Path(__file__).parent)],
        poll_wait=0.2,
    )


async def test_a_close_after_an_outage_leaves_no_close_callback_running(
    make_driver: Callable[..., RabbitMQDriver], tcp_proxy: Any, rabbitmq_url: str
) -> None:
    """The callbacks aio-pika ran when the lost connection closed must not outlive the
    driver's close: an event loop that ends right after would destroy them while pending."""
    driver = make_driver(url=tcp_proxy.url(rabbitmq_url), reconnect_interval=0.2)
    await driver.enqueue(_msg("callbacks"))
    await tcp_proxy.cut()
    await asyncio.sleep(0.3)
    await tcp_proxy.start()
    await asyncio.wait_for(driver.enqueue(_msg("callbacks")), 15)
    await driver.close()
    running = [t for t in asyncio.all_tasks() if not t.done() and _close_callback(t)]
    assert running == []


def _close_callback(task: asyncio.Task[Any]) -> bool:
    """Whether `task` runs one of aio-pika's close callbacks (`OneShotCallback`)."""
    code = getattr(task.get_coro(), "cr_code", None)
    return getattr(code, "co_qualname", "").startswith("OneShotCallback.")
