"""Frames written to the socket by whoever sends them, while aiormq's writer has nothing queued.

aiormq queues every frame a connection sends (a publish, an ack) for its writer task, which
writes it one loop iteration later: a step on the path of every dispatch and every ack. On
the driver's connections (`asynctasq_rabbitmq._frames.TOLERANT` set when aiormq builds them),
`DirectWrites` writes a frame at once when that is what the writer task would do next: it is
waiting for a frame, none is queued before this one, and the socket's send buffer is empty (so
the writer would not wait for it to drain). Anything else (a frame behind others, a full
buffer, the frame that closes the connection, a closing transport) is queued as before, so
frames keep their order and back-pressure still reaches the senders through the writer.

`install` puts `Connection` where aiormq's `connect` looks for the class; connections the
driver did not open are aiormq's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq.connection
from aiormq.abc import ChannelFrame
from aiormq.connection import TransportFactory
from yarl import URL

from asynctasq_rabbitmq._frames import TOLERANT
from asynctasq_rabbitmq._idle import WatchedQueue


class DirectWrites(WatchedQueue[ChannelFrame]):
    """A connection's write queue that writes a frame itself where the writer would at once."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.writer: asyncio.StreamWriter | None = None

    def stop(self, _: object = None) -> None:
        """Write nothing more directly (the connection is closing)."""
        self.writer = None

    def ready(self) -> bool:
        """Whether a frame put now is written at once."""
        writer = self.writer
        return (
            writer is not None
            and self.reader_waiting  # aiormq's writer task
            and self.empty()
            and not writer.transport.is_closing()
            and not writer.transport.get_write_buffer_size()
        )

    def put_nowait(self, item: ChannelFrame) -> None:
        writer = self.writer
        if writer is None or item.should_close or not self.ready():
            super().put_nowait(item)
            return
        writer.write(item.payload)
        if not item.should_drain:
            return
        if not writer.transport.get_write_buffer_size():
            item.drain()  # all of it reached the socket: the writer's drain would return now
            return
        # The rest waits in the transport's buffer: the writer drains it, then tells the sender.
        rest = ChannelFrame(payload=b"", should_close=False, drain_future=item.drain_future)
        super().put_nowait(rest)


class _Tap(TransportFactory):
    """The connection's transport factory, handing the writer it makes to `DirectWrites`."""

    def __init__(self, factory: TransportFactory, queue: DirectWrites) -> None:
        self._factory = factory
        self._queue = queue

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._factory.create(url, **kwargs)
        self._queue.writer = writer
        return reader, writer


class Connection(aiormq.connection.Connection):
    """aiormq's connection, with `DirectWrites` on the driver's connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not TOLERANT.get() or not _has_parts(self):
            return
        queue = DirectWrites(self.write_queue.maxsize)
        self.write_queue = queue
        self._transport_factory = _Tap(self._transport_factory, queue)
        # Once closing, aiormq's writer stops taking frames: so does the queue.
        self._closing.add_done_callback(queue.stop)


def _has_parts(connection: aiormq.connection.Connection) -> bool:
    """Whether `connection` has the parts `Connection` replaces (not aiormq's public
    interface): with another aiormq, frames are written as aiormq writes them."""
    return (
        type(connection.write_queue) is asyncio.Queue
        and isinstance(getattr(connection, "_transport_factory", None), TransportFactory)
        and isinstance(getattr(connection, "_closing", None), asyncio.Future)
    )


def install() -> None:
    """Make aiormq's `connect` build `Connection` (once per process)."""
    if not issubclass(aiormq.connection.Connection, Connection):
        aiormq.connection.Connection = Connection  # type: ignore[misc]  # on purpose


__all__ = ["Connection", "DirectWrites", "install"]
