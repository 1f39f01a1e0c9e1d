"""Deliveries handed to the driver's consumer as their frames are read, without a task each.

aiormq passes every frame from the connection's reader task to the channel's reader task
through a queue, and runs every consumer callback as a new task: a delivery reaches the
consumer two loop iterations (and a task's setup) after its frames were read, on the
dispatch-to-start path of every task. The driver's callback only files the message in its
buffer and wakes the waiting dequeue, which never blocks, so such a callback (`at_once`) is
called directly:

* by `Frames`, the channel's frame queue, in the connection's reader, when the delivery is
  the next thing the channel's reader would read (it is waiting, nothing is queued before
  it): the delivery's frames are held until its body is complete, then handed over; a frame
  out of place sends them all on to the channel's reader, which treats them as aiormq does;
* else by `Channel`, in the channel's reader.

Any other consumer is run by aiormq as before, so other users of aiormq in the process see
no change; an `at_once` callback still works on aiormq's own channel, as a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import FunctionType
from typing import Any

import aiormq.channel
import aiormq.connection
from aiormq.abc import ChannelFrame, ConfirmationFrameType, DeliveredMessage
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.frame import FrameTypes
from pamqp.header import ContentHeader

from asynctasq_rabbitmq._encode import encode
from asynctasq_rabbitmq._frames import TOLERANT
from asynctasq_rabbitmq._idle import WatchedQueue

log = logging.getLogger("aiormq.channel")  # where aiormq reports a consumer's failure


_AT_ONCE = "_asynctasq_at_once"

ConsumerCallback = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]


def at_once(deliver: Callable[[DeliveredMessage], None]) -> ConsumerCallback:
    """The consumer callback for `deliver`, which must not block: `Channel` calls `deliver`
    in its reader; aiormq's own channel runs the callback as a task, as any other.

    A coroutine function, not an object: aiormq wraps any other callable in one of its own.
    """

    async def consumer(message: DeliveredMessage) -> None:
        deliver(message)

    setattr(consumer, _AT_ONCE, deliver)
    return consumer


def _deliver_of(consumer: object) -> Callable[[DeliveredMessage], None] | None:
    """The `deliver` of an `at_once` callback, else None.

    Read from the function's own attributes only: `getattr` on another library's consumer
    (a mock, an object with `__getattr__`) could make one up and take its messages.
    """
    if type(consumer) is not FunctionType:
        return None
    deliver: Callable[[DeliveredMessage], None] | None = consumer.__dict__.get(_AT_ONCE)
    return deliver


class Channel(aiormq.channel.Channel):
    """aiormq's channel, calling `at_once` consumers without a task (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Before the channel's reader task first runs: it reads `self.frames` at each frame.
        # Only on the driver's connections, so that other users of aiormq see no change.
        # A queue of one frame could not take a held delivery's frames back (see `Frames`).
        frames = self.frames
        if TOLERANT.get() and type(frames) is asyncio.Queue and frames.maxsize != 1:
            self.frames = Frames(self, frames.maxsize)
        # The encoded `basic.publish` per (exchange, routing key): the same for every message.
        self._methods: dict[tuple[str, str], bytes] = {}

    async def _on_deliver_frame(self, frame: Basic.Deliver) -> None:
        tag = frame.consumer_tag
        if tag is None or _deliver_of(self.consumers.get(tag)) is None:
            await super()._on_deliver_frame(frame)
            return
        header = await self._get_frame()
        if not isinstance(header, ContentHeader):  # as aiormq's own reading refuses it
            raise ValueError(f"Unexpected frame {header!r} instead of ContentHeader", header)
        self.hand_over(tag, await self._read_content(frame, header))

    def hand_over(self, tag: str, message: DeliveredMessage) -> None:
        """Give `message` to the consumer `tag` now has: to an `at_once` one here and now."""
        consumer = self.consumers.get(tag)  # cancelled meanwhile: dropped, as aiormq does
        deliver = _deliver_of(consumer)
        if deliver is None:
            if consumer is not None:  # replaced meanwhile by another consumer with this tag
                task = self.create_task(consumer(message))
                task.add_done_callback(self._on_consumer_done)
            return
        try:
            deliver(message)
        except Exception:  # as aiormq treats a failed consumer task: logged, reading goes on
            log.exception("Consumer callback failed")

    def publish_now(
        self, body: bytes, *, exchange: str, routing_key: str, properties: Basic.Properties
    ) -> asyncio.Future[ConfirmationFrameType] | None:
        """`basic_publish(..., mandatory=True)` up to its write, done before the caller's
        next await: the frames are queued for the connection's writer (on the driver's
        connections, written at once: see `asynctasq_rabbitmq._writes`) and the publish's
        confirmation returned (it fails as `basic_publish` would: with the channel's close,
        `PublishError` for a returned message). None where anything is in the way (no
        publisher confirms, the channel closed or closed by the broker, busy with another
        publish, the write queue full, a frame the fast encoder leaves to pamqp, no message
        id): nothing was sent, and `basic_publish` is the way.
        """
        message_id = properties.message_id
        lock = self.__dict__.get(_LOCK)
        queue = self.write_queue
        if (
            not self.publisher_confirms
            or self.is_closed
            or _set(self.__dict__.get(_CLOSE_EVENT))
            or type(message_id) is not str
            or not message_id
            or not isinstance(lock, asyncio.Lock)
            or lock.locked()
            or queue.full()
        ):
            return None
        number = self.number
        method = self._methods.get((exchange, routing_key))
        if method is None:
            frame = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
            method = encode(frame, number)
            if method is None:
                return None
            if len(self._methods) < _METHODS:
                self._methods[exchange, routing_key] = method
        frames = [
            ContentHeader(properties=properties, body_size=len(body)),
            *self._split_body(body),
        ]
        parts = [method, *(encode(frame, number) for frame in frames)]
        if None in parts:
            return None
        # From here to the write, nothing awaits: aiormq's lock is not needed to keep the
        # delivery tags in the order the broker counts them.
        self.delivery_tag += 1
        tag = self.delivery_tag
        confirmation: asyncio.Future[ConfirmationFrameType] = self.create_future()
        self.confirmations[tag] = confirmation
        self.message_id_delivery_tag[message_id] = tag

        def forget_message_id(_: object) -> None:
            if self.message_id_delivery_tag.get(message_id) == tag:
                del self.message_id_delivery_tag[message_id]

        confirmation.add_done_callback(forget_message_id)
        queue.put_nowait(ChannelFrame(payload=b"".join(parts), should_close=False))  # type: ignore[arg-type]
        return confirmation


_Item = tuple[int, FrameTypes]  # (weight, frame), as aiormq's connection queues them


class Frames(WatchedQueue[_Item]):
    """A channel's frame queue, handing an `at_once` consumer's deliveries over as they are
    read, when they are the next thing the channel's reader would read."""

    def __init__(self, channel: Channel, maxsize: int) -> None:
        super().__init__(maxsize)
        self._channel = channel
        self._held: list[_Item] = []  # the frames of a delivery read so far
        self._body = 0  # bytes of its body read so far

    def put_nowait(self, item: _Item) -> None:
        if self._held:
            self._add(item)
            return
        frame = item[1]
        if (
            isinstance(frame, Basic.Deliver)
            and self.reader_waiting  # the channel's reader
            and self.empty()
            and not self._channel.is_closed
            and frame.consumer_tag is not None
            and _deliver_of(self._channel.consumers.get(frame.consumer_tag)) is not None
        ):
            self._held.append(item)
            self._body = 0
            return
        super().put_nowait(item)

    def _add(self, item: _Item) -> None:
        """Hold `item`, a later frame of the held delivery; hand it over once complete."""
        frame = item[1]
        self._held.append(item)
        if len(self._held) == 2:
            if not isinstance(frame, ContentHeader):
                self._release()
                return
            size = frame.body_size
        else:
            header = self._held[1][1]
            assert isinstance(header, ContentHeader)
            size = header.body_size
            # aiormq stops reading a body at an empty frame, and reads past its size: such
            # a delivery is left to it.
            if not isinstance(frame, ContentBody) or not frame.value:
                self._release()
                return
            self._body += len(frame.value)
            if self._body > size:
                self._release()
                return
        if self._body < size:
            if self.maxsize and len(self._held) >= self.maxsize:  # the empty queue's room
                self._release()
            return
        held, self._held = self._held, []
        deliver, header = held[0][1], held[1][1]
        assert isinstance(deliver, Basic.Deliver) and isinstance(header, ContentHeader)
        assert deliver.consumer_tag is not None
        if self._channel.is_closed:  # aiormq's reader has stopped: its frames are dropped
            return
        body = b"".join(f.value for _, f in held[2:] if isinstance(f, ContentBody))
        message = DeliveredMessage(
            delivery=deliver, header=header, body=body, channel=self._channel
        )
        self._channel.hand_over(deliver.consumer_tag, message)

    def _release(self) -> None:
        """Queue the held frames for the channel's reader, which reads them as aiormq does."""
        held, self._held = self._held, []
        for item in held:
            super().put_nowait(item)


_USED = ("_on_deliver_frame", "_get_frame", "_read_content", "_on_consumer_done", "_split_body")

_METHODS = 256  # bounded: routing keys come from callers

# Set once the broker closed the channel, a few loop iterations before `is_closed` turns true:
# a publish written then reaches a channel the broker freed, which closes the connection.
_CLOSE_EVENT = "_Channel__close_event"


def _set(event: object) -> bool:
    return isinstance(event, asyncio.Event) and event.is_set()


# aiormq's channel lock (name-mangled), held by a `basic_publish` from its tag to its write.
_LOCK = "_Channel__lock"


def install() -> None:
    """Make aiormq's connections open `Channel` (once per process).

    Only with an aiormq that has the parts `Channel` uses (they are not its public
    interface): with another, deliveries run as tasks, as aiormq runs them.
    """
    base = aiormq.channel.Channel
    if not all(hasattr(base, part) for part in _USED):
        return
    # The name aiormq's `Connection.channel` builds channels with (imported there, so not
    # exported as part of the module's interface).
    name = "Channel"
    if not issubclass(getattr(aiormq.connection, name), Channel):
        setattr(aiormq.connection, name, Channel)


__all__ = ["Channel", "Frames", "at_once", "install"]
