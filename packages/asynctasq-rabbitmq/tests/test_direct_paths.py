"""The driver's steps around aiormq's queues: frames written by their sender when aiormq's
writer would write them next, deliveries handed over as the connection reads them, a publish
written before its caller awaits. Each must keep aiormq's order and behaviour: the unit tests
drive the queues with frames in and out of place; the others run against the broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, cast

import aiormq
import aiormq.abc
import pamqp.frame
import pytest
from aiormq.abc import ChannelFrame, DeliveredMessage
from aiormq.exceptions import PublishError
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from asynctasq.drivers.base import OutgoingMessage
from asynctasq_rabbitmq import RabbitMQDriver, _channel, _frames, _writes
from asynctasq_rabbitmq.messages import task_properties
from asynctasq_rabbitmq.publisher import Publisher

MakeDriver = Callable[..., RabbitMQDriver]


# -- DirectWrites ------------------------------------------------------------------------------
class _Transport:
    def __init__(self) -> None:
        self.buffered = 0
        self.closing = False
        self.keep = 0  # bytes of each write the socket does not take

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Writer:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.transport.buffered += min(self.transport.keep, len(data))


async def _direct_writes() -> tuple[_writes.DirectWrites, _Writer, asyncio.Task[Any]]:
    """A queue with a writer task waiting on it, as aiormq's is between frames."""
    queue = _writes.DirectWrites(10)
    writer = _Writer()
    queue.writer = cast(asyncio.StreamWriter, writer)
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    return queue, writer, getter


def _frame(payload: bytes, *, drain: bool = False, close: bool = False) -> ChannelFrame:
    future = asyncio.get_running_loop().create_future() if drain else None
    return ChannelFrame(payload=payload, should_close=close, drain_future=future)


async def test_a_frame_is_written_at_once_when_the_writer_waits_with_nothing_queued() -> None:
    queue, writer, getter = await _direct_writes()
    frame = _frame(b"publish", drain=True)
    queue.put_nowait(frame)
    assert writer.written == [b"publish"]
    assert queue.empty() and not getter.done()
    assert frame.drain_future is not None and frame.drain_future.done()  # nothing buffered
    getter.cancel()


@pytest.mark.parametrize("obstacle", ["buffered", "closing", "close frame", "stopped"])
async def test_a_frame_goes_to_the_writer_when_something_is_in_the_way(obstacle: str) -> None:
    queue, writer, getter = await _direct_writes()
    if obstacle == "buffered":
        writer.transport.buffered = 1
    elif obstacle == "closing":
        writer.transport.closing = True
    elif obstacle == "stopped":
        queue.stop()
    frame = _frame(b"f", close=obstacle == "close frame")
    queue.put_nowait(frame)
    assert writer.written == []
    assert await asyncio.wait_for(getter, 1) is frame


async def test_frames_keep_their_order_behind_a_queued_one() -> None:
    queue = _writes.DirectWrites(10)
    writer = _Writer()
    queue.writer = cast(asyncio.StreamWriter, writer)
    queue.put_nowait(_frame(b"1"))  # no writer waiting yet: queued
    queue.put_nowait(_frame(b"2"))  # behind it: queued too
    assert writer.written == []
    assert [(await queue.get()).payload for _ in range(2)] == [b"1", b"2"]
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(_frame(b"3"))
    assert writer.written == [b"3"]
    getter.cancel()


async def test_a_write_the_socket_did_not_take_is_drained_by_the_writer() -> None:
    queue, writer, getter = await _direct_writes()
    writer.transport.keep = 2
    frame = _frame(b"abcdef", drain=True)
    queue.put_nowait(frame)
    assert writer.written == [b"abcdef"]
    assert frame.drain_future is not None and not frame.drain_future.done()
    rest = await asyncio.wait_for(getter, 1)  # the writer drains, then tells the sender
    assert rest.payload == b"" and rest.drain_future is frame.drain_future


# -- Frames: deliveries handed over in the connection's reader ----------------------------------
class _FakeChannel:
    def __init__(self, consumer: object) -> None:
        self.is_closed = False
        self.consumers = {"tag": consumer}
        self.handed: list[DeliveredMessage] = []

    def hand_over(self, tag: str, message: DeliveredMessage) -> None:
        assert tag == "tag"
        self.handed.append(message)


def _deliver(tag: str = "tag") -> Basic.Deliver:
    return Basic.Deliver(consumer_tag=tag, delivery_tag=1, exchange="x", routing_key="q")


def _header(size: int) -> ContentHeader:
    return ContentHeader(body_size=size, properties=Basic.Properties(message_id="m"))


async def _new_frames(consumer: object = None) -> tuple[_channel.Frames, _FakeChannel]:
    fake = _FakeChannel(_channel.at_once(lambda message: None) if consumer is None else consumer)
    return _channel.Frames(cast(_channel.Channel, fake), 10), fake


async def _waiting(frames: _channel.Frames) -> asyncio.Task[Any]:
    getter = asyncio.ensure_future(frames.get())
    await asyncio.sleep(0)
    return getter


async def _drain(frames: _channel.Frames, getter: asyncio.Task[Any]) -> list[object]:
    """Every frame the channel's reader would read now, in order."""
    read = [(await asyncio.wait_for(getter, 1))[1]]
    while not frames.empty():
        read.append((await frames.get())[1])
    return read


async def test_a_delivery_is_handed_over_once_its_body_is_complete() -> None:
    frames, fake = await _new_frames()
    getter = await _waiting(frames)
    deliver = _deliver()
    frames.put_nowait((0, deliver))
    frames.put_nowait((0, _header(6)))
    frames.put_nowait((0, ContentBody(b"abc")))
    assert fake.handed == []
    frames.put_nowait((0, ContentBody(b"def")))
    [message] = fake.handed
    assert message.body == b"abcdef" and message.delivery is deliver
    assert message.channel is fake  # type: ignore[comparison-overlap]
    assert frames.empty() and not getter.done()
    getter.cancel()


async def test_an_empty_body_is_handed_over_with_its_header() -> None:
    frames, fake = await _new_frames()
    getter = await _waiting(frames)
    frames.put_nowait((0, _deliver()))
    frames.put_nowait((0, _header(0)))
    assert [m.body for m in fake.handed] == [b""]
    getter.cancel()


@pytest.mark.parametrize(
    "rest",
    [
        [Basic.Ack(delivery_tag=3)],  # no content header
        [_header(4), Basic.Ack(delivery_tag=3)],  # no body
        [_header(4), ContentBody(b"")],  # an empty body frame: aiormq stops there
        [_header(4), ContentBody(b"abcdef")],  # more than the header says
    ],
    ids=["no header", "no body", "empty body frame", "body too long"],
)
async def test_frames_out_of_place_go_to_the_channels_reader_in_order(rest: list[object]) -> None:
    frames, fake = await _new_frames()
    getter = await _waiting(frames)
    deliver = _deliver()
    for frame in [deliver, *rest]:
        frames.put_nowait((0, frame))  # type: ignore[arg-type]
    assert fake.handed == []
    assert await _drain(frames, getter) == [deliver, *rest]


async def test_a_body_of_more_frames_than_the_queue_holds_goes_to_the_channels_reader() -> None:
    frames, fake = await _new_frames()
    getter = await _waiting(frames)
    sent: list[object] = [_deliver(), _header(20)]
    for frame in sent:
        frames.put_nowait((0, frame))  # type: ignore[arg-type]
    for _ in range(8):  # 10 frames held: released before an eleventh could not be queued
        body = ContentBody(b"x")
        sent.append(body)
        frames.put_nowait((0, body))
    assert fake.handed == [] and frames.full()  # all ten queued, none refused
    assert await _drain(frames, getter) == sent


@pytest.mark.parametrize("why", ["reader busy", "frames queued", "plain consumer", "closed"])
async def test_a_delivery_waits_for_the_channels_reader_when_it_must(why: str) -> None:
    async def plain(message: DeliveredMessage) -> None: ...

    frames, fake = await _new_frames(plain if why == "plain consumer" else None)
    getter = None if why == "reader busy" else await _waiting(frames)
    if why == "frames queued":
        assert getter is not None
        frames.put_nowait((0, Basic.Ack(delivery_tag=1)))  # taken by the waiting reader
        frames.put_nowait((0, Basic.Ack(delivery_tag=2)))  # still queued
    fake.is_closed = why == "closed"
    deliver = _deliver()
    frames.put_nowait((0, deliver))
    frames.put_nowait((0, _header(0)))
    assert fake.handed == []
    read = [(await frames.get())[1] for _ in range(frames.qsize())]
    assert read[-2:] == [deliver, read[-1]] and isinstance(read[-1], ContentHeader)
    if getter is not None:
        getter.cancel()


async def test_a_delivery_completed_after_its_channel_closed_is_dropped() -> None:
    frames, fake = await _new_frames()
    getter = await _waiting(frames)
    frames.put_nowait((0, _deliver()))
    fake.is_closed = True
    frames.put_nowait((0, _header(0)))
    assert fake.handed == [] and frames.empty()
    getter.cancel()


# -- against the broker --------------------------------------------------------------------------
def _msg(queue: str, payload: bytes = b"{}") -> OutgoingMessage:
    return OutgoingMessage(task_id=str(uuid.uuid4()), queue=queue, payload=payload)


async def test_a_delivery_to_a_waiting_worker_is_handed_over_in_the_connections_reader(
    make_driver: MakeDriver, delivered_in: list[str]
) -> None:
    ran_in = delivered_in
    worker, producer = make_driver(), make_driver()
    assert await worker.dequeue(["idle"], limit=1, wait=0.2) == []  # subscribed, now idle
    message = _msg("idle")
    waiting = asyncio.ensure_future(worker.dequeue(["idle"], limit=1, wait=5))
    await asyncio.sleep(0.1)
    await producer.enqueue(message)
    got = await waiting
    assert [d.task_id for d in got] == [message.task_id]
    await worker.ack(got)
    assert len(ran_in) == 1 and "Connection.__reader" in ran_in[0], ran_in


@pytest.mark.parametrize("size", [600_000, 3_000_000], ids=["5 frames", "23 frames"])
async def test_a_large_message_arrives_whole(make_driver: MakeDriver, size: int) -> None:
    """A body of several frames (held until complete), or of more than the channel's queue
    holds (left to aiormq's reading)."""
    worker, producer = make_driver(), make_driver()
    assert await worker.dequeue(["big"], limit=1, wait=0.2) == []
    payload = b'{"a":"' + uuid.uuid4().hex.encode() * (size // 32) + b'"}'
    message = _msg("big", payload)
    waiting = asyncio.ensure_future(worker.dequeue(["big"], limit=1, wait=10))
    await asyncio.sleep(0.1)
    await producer.enqueue(message)
    [got] = await waiting
    assert got.task_id == message.task_id and got.payload == payload
    await worker.ack([got])


async def _warm_publisher(driver: RabbitMQDriver, queue: str) -> Publisher:
    await driver.enqueue(_msg(queue))  # connects, declares, and leaves the channel to reuse
    publisher = driver._publisher
    assert publisher is not None
    return publisher


async def test_a_publish_is_written_before_its_caller_awaits(make_driver: MakeDriver) -> None:
    driver = make_driver()
    publisher = await _warm_publisher(driver, "now")
    message = _msg("now")
    target = publisher.target("now", 0)
    confirmation = publisher._publish_now(target, message.payload, task_properties(message.task_id))
    assert confirmation is not None
    assert isinstance(await asyncio.wait_for(confirmation, 5), Basic.Ack)
    other = make_driver()
    taken = await other.dequeue(["now"], limit=5, wait=5)
    assert message.task_id in {d.task_id for d in taken}
    await other.ack(taken)


async def test_publishes_racing_each_other_are_all_confirmed_and_delivered(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver()
    await _warm_publisher(driver, "race")
    messages = [_msg("race", b'{"n":%d}' % i) for i in range(300)]
    await asyncio.gather(*(driver.enqueue(m) for m in messages))
    other = make_driver()
    seen: set[str] = set()
    while len(seen) < 301:
        taken = await other.dequeue(["race"], limit=100, wait=5)
        assert taken, f"only {len(seen)} of 301 arrived"
        seen.update(d.task_id for d in taken)
        await other.ack(taken)
    assert {m.task_id for m in messages} <= seen


async def test_a_publish_waits_its_turn_behind_aiormqs_own(make_driver: MakeDriver) -> None:
    driver = make_driver()
    publisher = await _warm_publisher(driver, "turn")
    channel = publisher._underlay
    assert isinstance(channel, _channel.Channel)
    target = publisher.target("turn", 0)
    properties = task_properties(str(uuid.uuid4()))
    lock = channel.__dict__[_channel._LOCK]
    async with lock:  # a basic_publish between its delivery tag and its write
        assert (
            channel.publish_now(
                b"{}",
                exchange=target.exchange,
                routing_key=target.routing_key,
                properties=properties,
            )
            is None
        )
    queue = channel.write_queue
    for _ in range(queue.maxsize):  # queued past the direct path, as frames behind others are
        asyncio.Queue.put_nowait(queue, ChannelFrame(payload=b"", should_close=False))
    assert (
        channel.publish_now(
            b"{}", exchange=target.exchange, routing_key=target.routing_key, properties=properties
        )
        is None
    )  # the writer's queue is full: basic_publish waits for room
    await asyncio.sleep(0.05)
    assert queue.empty()


async def test_a_message_returned_by_the_broker_is_published_again_after_a_declare(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = make_driver()
    publisher = await _warm_publisher(driver, "gone")
    outcomes: list[str] = []
    fast = Publisher._publish_now

    def spy(self: Publisher, *args: Any) -> asyncio.Future[Any] | None:
        sent = fast(self, *args)
        if sent is not None:
            sent.add_done_callback(
                lambda f: outcomes.append(type(f.exception()).__name__ if f.exception() else "ok")
            )
        return sent

    monkeypatch.setattr(Publisher, "_publish_now", spy)
    connection = await driver._amqp()
    channel = await connection.channel()
    await channel.queue_delete(driver._topology.work_queue("gone"))
    await channel.close()
    message = _msg("gone")
    await driver.enqueue(message)
    assert outcomes == [PublishError.__name__]  # written at once, returned, then declared
    assert publisher._topology.declared("gone")
    other = make_driver()
    taken = await other.dequeue(["gone"], limit=1, wait=5)
    assert [d.task_id for d in taken] == [message.task_id]
    await other.ack(taken)


async def test_other_aiormq_connections_write_as_aiormq_does(rabbitmq_url: str) -> None:
    _writes.install()
    connection = await aiormq.connect(rabbitmq_url)
    try:
        assert isinstance(connection, _writes.Connection)
        assert type(connection.write_queue) is asyncio.Queue
        channel = await connection.channel()
        declared = await channel.queue_declare(exclusive=True, auto_delete=True)
        assert declared.queue is not None
        await channel.basic_publish(b"x", routing_key=declared.queue)
        got = await channel.basic_get(declared.queue, no_ack=True)
        assert got.body == b"x"
    finally:
        await connection.close()


async def test_the_connection_opened_after_an_outage_takes_the_same_paths(
    make_driver: MakeDriver, tcp_proxy: Any, rabbitmq_url: str
) -> None:
    driver = make_driver(url=tcp_proxy.url(rabbitmq_url), reconnect_interval=0.2)
    publisher = await _warm_publisher(driver, "again")
    first = publisher._underlay
    await tcp_proxy.cut()
    await asyncio.sleep(0.3)
    await tcp_proxy.start()
    message = _msg("again")
    await asyncio.wait_for(driver.enqueue(message), 15)  # reconnects, then publishes
    await driver.enqueue(_msg("again"))
    channel = publisher._underlay
    assert isinstance(channel, _channel.Channel) and channel is not first
    assert isinstance(channel.write_queue, _writes.DirectWrites)
    assert isinstance(channel.frames, _channel.Frames)
    connection = await driver._amqp()
    assert isinstance(connection, _writes.Connection)


@pytest.mark.parametrize(
    ("size", "unlimited"),
    [(0, False), (1, False), (-1, False), (0x10000, False), (300_000, False), (5000, True)],
    ids=["0", "1", "one frame's room", "64 KiB", "300 kB", "no frame size limit"],
)
async def test_a_publish_writes_the_bytes_aiormq_writes(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch, size: int, unlimited: bool
) -> None:
    """Byte for byte what `basic_publish` hands its writer, in one or many body frames
    (-1: a body exactly one frame's room long; `unlimited`: as where the broker gives a
    `frame_max` of 0, which leaves a frame's room below zero)."""
    driver = make_driver()
    publisher = await _warm_publisher(driver, "bytes")
    channel = publisher._underlay
    assert isinstance(channel, _channel.Channel)
    if unlimited:
        monkeypatch.setattr(channel, "max_content_size", -8)
    room = channel.max_content_size
    body = (
        (b"abcdefgh" * (room // 8 + 1))[:room]
        if size == -1
        else bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    )
    properties = task_properties(str(uuid.uuid4()), 0, 3)
    target = publisher.target("bytes", 0)
    written: list[bytes] = []
    queue = channel.write_queue
    put = queue.put_nowait

    def spy(item: ChannelFrame) -> None:
        written.append(item.payload)
        put(item)

    monkeypatch.setattr(queue, "put_nowait", spy)
    confirmation = channel.publish_now(
        body, exchange=target.exchange, routing_key=target.routing_key, properties=properties
    )
    assert confirmation is not None
    await asyncio.wait_for(confirmation, 5)
    pamqp_marshal = pamqp.frame.marshal.__wrapped__  # type: ignore[attr-defined]
    monkeypatch.setattr(pamqp.frame, "marshal", pamqp_marshal)  # aiormq's frames, pamqp's coder
    frames = [
        Basic.Publish(exchange=target.exchange, routing_key=target.routing_key, mandatory=True),
        ContentHeader(properties=properties, body_size=len(body)),
        *channel._split_body(body),
    ]
    expected = ChannelFrame.marshall(channel_number=channel.number, frames=frames).payload
    assert written == [expected]


async def test_a_publish_waits_for_aiormq_once_the_broker_closed_the_channel(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the broker's `channel.close` and `is_closed` turning true, a publish must not
    be written: the broker would close the whole connection for it."""
    driver = make_driver()
    publisher = await _warm_publisher(driver, "closing")
    channel = publisher._underlay
    assert isinstance(channel, _channel.Channel)
    closed = asyncio.Event()
    closed.set()
    monkeypatch.setitem(channel.__dict__, _channel._CLOSE_EVENT, closed)
    assert not channel.is_closed
    target = publisher.target("closing", 0)
    properties = task_properties(str(uuid.uuid4()))
    assert (
        channel.publish_now(
            b"{}", exchange=target.exchange, routing_key=target.routing_key, properties=properties
        )
        is None
    )


async def test_a_channel_queue_too_small_to_take_a_delivery_back_is_aiormqs(
    rabbitmq_url: str,
) -> None:
    _channel.install()
    _writes.install()
    token = _frames.TOLERANT.set(True)
    try:
        connection = await aiormq.connect(rabbitmq_url)
    finally:
        _frames.TOLERANT.reset(token)
    try:
        token = _frames.TOLERANT.set(True)
        try:
            one = await connection.channel(frame_buffer_size=1)
            two = await connection.channel(frame_buffer_size=2)
        finally:
            _frames.TOLERANT.reset(token)
        assert type(one.frames) is asyncio.Queue
        assert isinstance(two.frames, _channel.Frames)
    finally:
        await connection.close()


async def test_a_held_delivery_is_released_within_a_small_queues_room() -> None:
    fake = _FakeChannel(_channel.at_once(lambda message: None))
    frames = _channel.Frames(cast(_channel.Channel, fake), 2)
    getter = await _waiting(frames)
    deliver, header = _deliver(), _header(4)
    frames.put_nowait((0, deliver))
    frames.put_nowait((0, header))  # two held, body to come: released into the room of two
    assert frames.full() and fake.handed == []
    body = ContentBody(b"abcd")
    put = asyncio.ensure_future(frames.put((0, body)))  # waits for room, as the reader's do
    assert await _drain(frames, getter) == [deliver, header, body]
    assert put.done() and fake.handed == []
