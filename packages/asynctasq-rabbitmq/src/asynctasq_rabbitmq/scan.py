"""Reading a whole queue without losing it: consume everything unacked, then give it back.

AMQP has no "browse". A scan opens its own channel, consumes every message that was ready
when it started, or the first `limit` of them (a prefetch of that many, so it holds them
all and no more, up to AMQP's largest prefetch), lets the caller ack the ones it removes,
and closes the channel: RabbitMQ requeues the rest in their original order. Cost: the
whole queue travels to the client and sits in its memory; while a scan runs, its messages are
invisible to other scans. Used for dead letters and the queue registry, never for tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiormq.abc import AbstractChannel, AbstractConnection, DeliveredMessage
from aiormq.exceptions import AMQPError, ChannelNotFoundEntity

IDLE_SECONDS = 0.5
"""A scan stops early when no message arrived for this long (someone else holds the rest)."""


async def passive_count(connection: AbstractConnection, name: str) -> tuple[int, int] | None:
    """Ready messages and consumers of queue `name`, or None when it does not exist.

    Opens a short-lived channel: a passive declare of a missing queue closes its channel.
    """
    channel = await connection.channel(publisher_confirms=False)
    try:
        declared = await channel.queue_declare(name, passive=True)
    except ChannelNotFoundEntity:
        return None
    finally:
        with contextlib.suppress(AMQPError, ConnectionError, RuntimeError):
            await channel.close()
    return int(declared.message_count or 0), int(declared.consumer_count or 0)


class Scan:
    """The messages of one queue, held unacked on a private channel until the scan ends.

    Attributes:
        channel: The private channel; ack through `ack` before the scan ends.
        messages: The messages, oldest first.
    """

    def __init__(self, channel: AbstractChannel, messages: list[DeliveredMessage]) -> None:
        self.channel = channel
        self.messages = messages

    async def ack(self, message: DeliveredMessage) -> None:
        """Remove `message` from the queue for good."""
        tag = getattr(message.delivery, "delivery_tag", None)
        if tag is not None:
            await self.channel.basic_ack(tag)


MAX_PREFETCH = 65_535
"""The largest prefetch count AMQP can carry (a short); 0 means unlimited."""


@contextlib.asynccontextmanager
async def scan(
    connection: AbstractConnection, name: str, limit: int | None = None
) -> AsyncIterator[Scan]:
    """Hold every ready message of queue `name` (at most the first `limit`) for the duration
    of the block.

    Messages not acked inside the block go back to the queue, in order, when it ends (the
    private channel closes). A missing queue scans as empty. With a `limit` up to
    `MAX_PREFETCH`, the prefetch keeps the rest on the broker: a long queue costs what is
    read of it, not all of it.
    """
    channel = await connection.channel(publisher_confirms=False)
    messages: list[DeliveredMessage] = []
    try:
        try:
            declared = await channel.queue_declare(name, passive=True)
        except ChannelNotFoundEntity:
            yield Scan(channel, messages)
            return
        expected = int(declared.message_count or 0)
        if limit is not None:
            expected = min(expected, max(limit, 0))
        if expected:
            arrived = asyncio.Event()

            async def collect(message: DeliveredMessage) -> None:
                messages.append(message)
                arrived.set()

            await channel.basic_qos(prefetch_count=expected if expected <= MAX_PREFETCH else 0)
            consumer = await channel.basic_consume(name, collect)
            while len(messages) < expected:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), IDLE_SECONDS)
                except TimeoutError:
                    break
            if consumer.consumer_tag is not None:
                await channel.basic_cancel(consumer.consumer_tag)
            await asyncio.sleep(0)  # let deliveries read before the cancel reach `collect`
        yield Scan(channel, messages if limit is None else messages[: max(limit, 0)])
    finally:
        with contextlib.suppress(AMQPError, ConnectionError, RuntimeError):
            await channel.close()


__all__ = ["IDLE_SECONDS", "MAX_PREFETCH", "Scan", "passive_count", "scan"]
