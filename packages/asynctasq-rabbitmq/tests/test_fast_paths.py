"""The driver's shorter paths through aiormq (frame reading, deliveries without a task each)
serve its own connections, leave every other aiormq user in the process as it was, and keep
aiormq's behaviour where it matters: a failing consumer is logged and reading goes on, a
connection that closes mid-frame is reported with aiormq's error."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from unittest.mock import AsyncMock

import aiormq
import aiormq.abc
import pamqp.frame
import pytest
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import AMQPConnectionError
from pamqp.body import ContentBody
from pamqp.commands import Basic

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_rabbitmq import RabbitMQDriver, _channel, _frames, _reader

MakeDriver = Callable[..., RabbitMQDriver]


@pytest.fixture
async def own_queue(rabbitmq_url: str) -> AsyncIterator[tuple[aiormq.abc.AbstractChannel, str]]:
    """A plain aiormq connection in a process where the driver's channel class is installed:
    a channel on it and an exclusive queue (deleted with the connection)."""
    _channel.install()
    connection = await aiormq.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        declared = await channel.queue_declare(exclusive=True, auto_delete=True)
        assert declared.queue is not None
        yield channel, declared.queue
    finally:
        await connection.close()


async def test_a_plain_aiormq_consumer_in_the_same_process_runs_as_a_task(
    own_queue: tuple[aiormq.abc.AbstractChannel, str],
) -> None:
    channel, queue = own_queue
    assert isinstance(channel, _channel.Channel)
    ran_in: list[asyncio.Task[object] | None] = []
    got = asyncio.Event()

    async def plain(message: DeliveredMessage) -> None:
        ran_in.append(asyncio.current_task())
        got.set()

    await channel.basic_consume(queue, plain, no_ack=True)
    await channel.basic_publish(b"x", routing_key=queue)
    await asyncio.wait_for(got.wait(), 5)
    # aiormq's way: a task of its own per delivery, not the channel's reader.
    assert ran_in[0] is not None and "plain" in repr(ran_in[0].get_coro())


async def test_a_failing_at_once_consumer_is_logged_and_the_next_delivery_arrives(
    own_queue: tuple[aiormq.abc.AbstractChannel, str], caplog: pytest.LogCaptureFixture
) -> None:
    channel, queue = own_queue
    bodies: list[bytes] = []
    two = asyncio.Event()

    def deliver(message: DeliveredMessage) -> None:
        bodies.append(message.body)
        if len(bodies) == 2:
            two.set()
        if message.body == b"first":
            raise RuntimeError("consumer broke")

    await channel.basic_consume(queue, _channel.at_once(deliver), no_ack=True)
    with caplog.at_level(logging.ERROR, logger="aiormq.channel"):
        await channel.basic_publish(b"first", routing_key=queue)
        await channel.basic_publish(b"second", routing_key=queue)
        await asyncio.wait_for(two.wait(), 5)
    assert bodies == [b"first", b"second"]
    assert any("consumer broke" in str(r.exc_info) for r in caplog.records)
    assert not channel.is_closed


async def test_deliveries_reach_the_driver_without_a_task_each(
    make_driver: MakeDriver, delivered_in: list[str]
) -> None:
    """In the connection's reader or, behind other frames of the channel (here the
    subscription's reply may be), in the channel's; never in a task of their own."""
    ran_in = delivered_in
    driver = make_driver()
    task_id = str(uuid.uuid4())
    await driver.enqueue(OutgoingMessage(task_id=task_id, queue="q", payload=b"{}"))
    got = await driver.dequeue(["q"], limit=1, wait=5)
    assert [d.task_id for d in got] == [task_id]
    await driver.ack(got)
    assert len(ran_in) == 1
    assert "Channel._reader" in ran_in[0] or "Connection.__reader" in ran_in[0], ran_in


@pytest.mark.parametrize("cut", range(12))
async def test_a_connection_closed_mid_frame_raises_what_aiormq_raises(cut: int) -> None:
    frame = pamqp.frame.marshal(ContentBody(b"abcd"), 1)  # 12 bytes
    errors: list[str] = []
    for tolerant in (False, True):
        reader = asyncio.StreamReader()
        reader.feed_data(frame[:cut])
        reader.feed_eof()
        receiver = _reader.FrameReader(reader)
        receiver.started = True
        token = _frames.TOLERANT.set(tolerant)
        try:
            with pytest.raises((AMQPConnectionError, StopAsyncIteration)) as raised:
                await receiver.get_frame()
        finally:
            _frames.TOLERANT.reset(token)
        errors.append(f"{type(raised.value).__name__}: {raised.value}")
    assert errors[0] == errors[1]
    if cut:
        assert "unexpectedly closed" in errors[1]


async def test_the_reader_returns_the_frames_aiormqs_returns() -> None:
    data = pamqp.frame.marshal(Basic.Ack(3), 2) + pamqp.frame.marshal(ContentBody(b"abc"), 2)
    read: list[list[tuple[int, int, object]]] = []
    for tolerant in (False, True):
        stream = asyncio.StreamReader()
        stream.feed_data(data)
        receiver = _reader.FrameReader(stream)
        receiver.started = True
        token = _frames.TOLERANT.set(tolerant)
        try:
            frames = [await receiver.get_frame(), await receiver.get_frame()]
        finally:
            _frames.TOLERANT.reset(token)
        read.append([(used, channel, _held(frame)) for used, channel, frame in frames])
    assert read[0] == read[1] == [(21, 2, ("Ack", 3, False)), (11, 2, ("ContentBody", b"abc"))]


def _held(frame: object) -> object:
    if isinstance(frame, ContentBody):
        return ("ContentBody", frame.value)
    assert isinstance(frame, Basic.Ack)
    return ("Ack", frame.delivery_tag, frame.multiple)


async def test_a_consumer_that_makes_up_attributes_is_not_taken_for_the_drivers(
    own_queue: tuple[aiormq.abc.AbstractChannel, str],
) -> None:
    """Another library's consumer whose `getattr` invents attributes (a mock) still runs."""
    channel, queue = own_queue
    consumer = AsyncMock()
    await channel.basic_consume(queue, consumer, no_ack=True)
    await channel.basic_publish(b"x", routing_key=queue)
    for _ in range(100):
        if consumer.await_count:
            break
        await asyncio.sleep(0.05)
    assert consumer.await_count == 1
