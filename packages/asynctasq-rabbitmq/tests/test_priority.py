"""Priorities on RabbitMQ beyond the conformance suite: work queues declared before them,
foreign priority values, and the consumer's buffer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiormq import Channel
from pamqp.commands import Basic

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_rabbitmq import RabbitMQDriver
from asynctasq_rabbitmq.buffer import Buffered, DeliveryBuffer

MakeDriver = Callable[..., RabbitMQDriver]


def _msg(queue: str, priority: int = 0) -> OutgoingMessage:
    task_id = str(uuid.uuid4())
    return OutgoingMessage(task_id, queue, task_id.encode(), priority=priority)


async def _declare(driver: RabbitMQDriver, queue: str, arguments: dict[str, Any]) -> None:
    """Declare the work queue `queue` as another release or an operator would have."""
    channel = await driver._private_channel()
    await channel.queue_declare(driver.queue_prefix + queue, durable=True, arguments=arguments)
    await channel.close()


async def _take_all(driver: RabbitMQDriver, queue: str, want: int) -> list[str]:
    ids: list[str] = []
    for _ in range(want * 3):
        for delivery in await driver.dequeue([queue], limit=1, wait=1.0):
            ids.append(delivery.task_id)
            await driver.ack([delivery])
        if len(ids) == want:
            break
    return ids


async def test_a_queue_declared_before_priorities_is_used_then_re_created(
    make_driver: MakeDriver, caplog: pytest.LogCaptureFixture
) -> None:
    driver = make_driver()
    old = {"x-queue-type": "classic", "x-consumer-timeout": 86_400_000}
    await _declare(driver, "legacy", old)
    await driver.enqueue(first := _msg("legacy"))  # priority 0 works as before
    assert caplog.text.count("without x-max-priority") == 1
    with pytest.raises(ValueError, match="Drain and delete it") as refused:
        await driver.enqueue(_msg("legacy", 3))
    assert "legacy" in str(refused.value) and "Nothing was queued" in str(refused.value)
    with pytest.raises(ValueError, match="priority 5"):
        await driver.enqueue_many([_msg("legacy"), _msg("legacy", 5)])
    assert caplog.text.count("without x-max-priority") == 1  # said once
    [stats] = await driver.stats(["legacy"])
    assert stats.ready == 1  # nothing of the refused batch was published
    assert await _take_all(driver, "legacy", 1) == [first.task_id]

    # The migration the message names: drained, deleted, declared again with priorities.
    channel = await driver._private_channel()
    await channel.queue_delete(driver.queue_prefix + "legacy")
    await channel.close()
    low, high = _msg("legacy"), _msg("legacy", 7)
    await driver.enqueue(low)  # unroutable: the driver declares the queue again
    await driver.enqueue(high)
    fresh = make_driver()
    assert await _take_all(fresh, "legacy", 2) == [high.task_id, low.task_id]


async def test_a_queue_with_a_lower_max_priority_orders_up_to_it(
    make_driver: MakeDriver, caplog: pytest.LogCaptureFixture
) -> None:
    driver = make_driver()
    await _declare(
        driver,
        "five",
        {"x-queue-type": "classic", "x-consumer-timeout": 86_400_000, "x-max-priority": 5},
    )
    low, high = _msg("five", 1), _msg("five", 5)
    await driver.enqueue_many([low, high])
    assert "with x-max-priority 5" in caplog.text
    with pytest.raises(ValueError, match="priority 6"):
        await driver.enqueue(_msg("five", 6))
    assert await _take_all(make_driver(), "five", 2) == [high.task_id, low.task_id]


@pytest.mark.parametrize("bad", [10, -1, True, 2.5])
async def test_a_priority_outside_0_to_9_is_refused(make_driver: MakeDriver, bad: object) -> None:
    driver = make_driver()
    wrong = OutgoingMessage(str(uuid.uuid4()), "q", b"x", priority=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="priority must be a whole number from 0 to 9"):
        await driver.enqueue_many([_msg("q", 2), wrong])
    assert await driver.dequeue(["q"], limit=5, wait=0.3) == []


async def test_a_foreign_priority_is_capped_when_republished(make_driver: MakeDriver) -> None:
    """Anyone may publish priority 0-255: the driver keeps at most 9 on the copies it makes."""
    driver = make_driver()
    await driver.enqueue(seed := _msg("foreign"))  # declares the queue
    channel = await driver._private_channel()
    await channel.basic_publish(
        b"{}",
        routing_key=driver.queue_prefix + "foreign",
        properties=Basic.Properties(message_id="forged", priority=200, delivery_mode=2),
    )
    await channel.close()
    first = await _take_all_deliveries(driver, "foreign", 2)
    assert [d.task_id for d in first] == ["forged", seed.task_id]
    assert first[0].receipt.priority == 9
    await driver.release(first)
    await driver.close()  # or its consumer takes the copies back
    again = await _take_all_deliveries(make_driver(), "foreign", 2)
    assert [d.task_id for d in again] == ["forged", seed.task_id]


async def _take_all_deliveries(driver: RabbitMQDriver, queue: str, want: int) -> list[Any]:
    got: list[Any] = []
    for _ in range(want * 3):
        got += await driver.dequeue([queue], limit=want - len(got), wait=1.0)
        if len(got) >= want:
            break
    return got


async def test_deliveries_taken_as_they_arrive_cost_no_extra_fetch(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order check (`basic.get`) is only for deliveries buffered before a dequeue
    began: a consumer waiting for each message, as a worker with free slots does, pays
    nothing for it."""
    fetches = 0
    original = Channel.basic_get

    async def counting(self: Channel, *args: Any, **kwargs: Any) -> Any:
        nonlocal fetches
        fetches += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Channel, "basic_get", counting)
    consumer, producer = make_driver(), make_driver()
    await consumer.dequeue(["hot"], limit=1, wait=0)  # subscribed, queue declared
    for _ in range(10):
        waiting = asyncio.ensure_future(consumer.dequeue(["hot"], limit=1, wait=5.0))
        await asyncio.sleep(0.05)
        await producer.enqueue(_msg("hot", 0))
        [delivery] = await waiting
        await consumer.ack([delivery])
    assert fetches == 0
    # A delivery that waited in the buffer is checked against the queue's head (once: the
    # next dequeue follows within RECHECK_AFTER).
    await producer.enqueue(low := _msg("hot", 0))
    await asyncio.sleep(0.3)  # pushed into the buffer while nobody asked
    await producer.enqueue(high := _msg("hot", 8))
    got = await _take_all(consumer, "hot", 2)
    assert got == [high.task_id, low.task_id]
    assert fetches == 1


def test_the_buffer_keeps_priority_then_arrival_order() -> None:
    buffer = DeliveryBuffer()
    order = [(0, "a"), (0, "b"), (5, "c"), (3, "d"), (5, "e"), (0, "f"), (9, "g")]
    for priority, name in order:
        buffer.add(Buffered(name, 1, priority, 0.0))  # type: ignore[arg-type]
    buffer.add(Buffered("h", -1, 3, 0.0))  # type: ignore[arg-type]
    assert buffer.fetched == 1
    out = [str(buffer.popleft().message) for _ in range(len(buffer))]
    assert out == ["g", "c", "e", "d", "h", "a", "b", "f"]
    assert buffer.fetched == 0 and not buffer
