"""The in-memory driver's public inspection: messages by state, dead letters, make_due, join."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from asynctasq.drivers.base import Failure, OutgoingMessage
from asynctasq.testing import MemoryDriver


def message(task_id: str, queue: str = "q", delay: float = 0.0) -> OutgoingMessage:
    return OutgoingMessage(task_id, queue, f"payload-{task_id}".encode(), delay=delay)


async def test_messages_show_ready_delayed_and_in_flight_in_order() -> None:
    driver = MemoryDriver()
    await driver.enqueue_many([message("a"), message("b", delay=60), message("c", queue="other")])
    [leased] = await driver.dequeue(["q"], limit=1, wait=0)
    assert leased.task_id == "a"

    states = [(m.task_id, m.queue, m.state, m.deliveries) for m in driver.messages()]
    assert states == [
        ("a", "q", "in_flight", 1),
        ("b", "q", "delayed", 0),
        ("c", "other", "ready", 0),
    ]
    assert [m.task_id for m in driver.queued()] == ["b", "c"]
    assert [m.task_id for m in driver.queued("q")] == ["b"]
    assert [m.task_id for m in driver.in_flight()] == ["a"]
    assert [m.task_id for m in driver.messages(state="ready")] == ["c"]
    assert driver.messages("q", state="ready") == []
    assert driver.messages()[0].payload == b"payload-a"


async def test_dead_letters_and_idle() -> None:
    driver = MemoryDriver()
    assert driver.idle()
    await driver.enqueue_many([message("a"), message("b", queue="other")])
    deliveries = await driver.dequeue(["q", "other"], limit=2, wait=0)
    await driver.dead_letter(deliveries[0], Failure("builtins.ValueError", "bad", ""))
    assert not driver.idle() and driver.idle("q") and not driver.idle("other")
    [dead] = driver.dead_letters()
    assert (dead.task_id, dead.queue, dead.failure.message) == ("a", "q", "bad")
    assert driver.dead_letters("other") == []
    await driver.ack(deliveries[1:])
    assert driver.idle()


async def test_make_due_readies_delayed_messages_of_one_queue() -> None:
    driver = MemoryDriver()
    await driver.enqueue_many([message("a", delay=3600), message("b", queue="other", delay=3600)])
    assert await driver.dequeue(["q", "other"], limit=2, wait=0) == []
    assert driver.make_due("q") == 1
    assert [d.task_id for d in await driver.dequeue(["q", "other"], limit=2, wait=0)] == ["a"]
    assert [m.state for m in driver.messages("other")] == ["delayed"]


async def test_make_due_wakes_a_waiting_fetch() -> None:
    driver = MemoryDriver()
    await driver.enqueue(message("a", delay=3600))
    fetch = asyncio.create_task(driver.dequeue(["q"], limit=1, wait=30))
    await asyncio.sleep(0.05)
    assert not fetch.done()
    driver.make_due()
    [delivery] = await asyncio.wait_for(fetch, 5)
    assert delivery.task_id == "a"


async def test_clear_forgets_everything() -> None:
    driver = MemoryDriver()
    await driver.enqueue_many([message("a"), message("b", delay=9)])
    await driver.dequeue(["q"], limit=1, wait=0)
    driver.clear()
    assert driver.idle() and driver.messages() == [] and await driver.queue_names() == []


async def test_join_waits_for_a_consumer_to_settle_everything() -> None:
    driver = MemoryDriver()
    await driver.enqueue_many([message(str(i)) for i in range(5)])
    settled: list[str] = []

    async def consume() -> None:
        while len(settled) < 5:
            for delivery in await driver.dequeue(["q"], limit=2, wait=1):
                await asyncio.sleep(0.01)
                settled.append(delivery.task_id)
                await driver.ack([delivery])

    consumer = asyncio.create_task(consume())
    await driver.join("q", timeout=10)
    assert sorted(settled) == ["0", "1", "2", "3", "4"]
    assert driver.idle()
    await consumer


async def test_join_times_out_naming_what_is_left() -> None:
    driver = MemoryDriver()
    await driver.enqueue_many([message("a"), message("b", delay=60)])
    with pytest.raises(
        TimeoutError, match=r"queue 'q' still busy .*1 ready, 1 delayed, 0 in_flight"
    ):
        await driver.join("q", timeout=0.05)
    await driver.join("elsewhere", timeout=0.05)  # nothing there: returns at once


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "1"])
async def test_join_refuses_a_bad_timeout(timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        await MemoryDriver().join(timeout=timeout)  # type: ignore[arg-type]


def test_messages_refuses_an_unknown_state() -> None:
    with pytest.raises(ValueError, match="state must be one of ready, delayed, in_flight"):
        MemoryDriver().messages(state="done")  # type: ignore[arg-type]


async def test_namespaces_share_what_they_show() -> None:
    ns = f"inspect-{uuid.uuid4().hex}"
    await MemoryDriver(namespace=ns).enqueue(message("a"))
    assert [m.task_id for m in MemoryDriver(namespace=ns).queued()] == ["a"]
    MemoryDriver(namespace=ns).clear()
