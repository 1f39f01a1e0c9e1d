"""aiormq's frame reader, with fewer steps per frame on the driver's connections.

aiormq reads each frame in three `readexactly` calls into a `BytesIO`, parses the frame
header twice (once to size the read, once in `pamqp.frame.unmarshal`) and copies the frame
out of the buffer again. A worker reads three frames per task, and on a worker woken from
idle every step is slow: the reader reads the 7-byte frame header and the rest with two
calls, and passes the bytes on as they are.

`install` puts `FrameReader` where aiormq's `Connection.connect` looks for the class.
Connections the driver did not open (`asynctasq_rabbitmq._frames.TOLERANT` unset in their
reader) read exactly as aiormq reads them; errors are reported with aiormq's exceptions and
messages either way.
"""

from __future__ import annotations

import asyncio
import struct

import aiormq.connection
import pamqp.frame
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp import constants
from pamqp.exceptions import PAMQPException
from pamqp.frame import FrameTypes

from asynctasq_rabbitmq._frames import TOLERANT

_SIZE = struct.Struct(">I")
_HEAD = constants.FRAME_HEADER_SIZE


class FrameReader(aiormq.connection.FrameReceiver):
    """aiormq's `FrameReceiver` with a shorter read (see the module docstring)."""

    async def get_frame(self) -> tuple[int, int, FrameTypes]:
        if not TOLERANT.get():
            return await super().get_frame()
        reader = self.reader
        if reader.at_eof():
            del self.reader
            raise StopAsyncIteration
        async with self.lock:
            try:
                head = await reader.readexactly(_HEAD)
            except asyncio.IncompleteReadError as exc:
                # aiormq reads a frame's header as 1 byte, then 6: its message counts so.
                got = len(exc.partial)
                raise _closed(max(got - 1, 0), 6 if got else 1) from exc
            except OSError as exc:
                raise _connection_error(exc) from exc
            if not self.started:
                if head.startswith(b"AMQP"):
                    raise ProtocolSyntaxError("Unexpected AMQP protocol header")
                self.started = True
            (size,) = _SIZE.unpack_from(head, 3)
            try:
                data = head + await reader.readexactly(size + 1)
            except asyncio.IncompleteReadError as exc:
                raise _closed(len(exc.partial), size + 1) from exc
            except OSError as exc:
                raise _connection_error(exc) from exc
        try:
            return pamqp.frame.unmarshal(data)
        except PAMQPException as exc:
            raise InvalidFrameError(str(exc)) from exc


def _closed(read: int, expected: int) -> AMQPConnectionError:
    """What aiormq's own reader raises when the connection ends inside a frame."""
    return AMQPConnectionError(
        f"Server connection unexpectedly closed. Read {read} bytes but {expected} bytes expected"
    )


def _connection_error(exc: OSError) -> AMQPConnectionError:
    """What aiormq's own reader raises for `exc`, with its message."""
    if isinstance(exc, ConnectionRefusedError):
        return AMQPConnectionError(f"Server connection refused: {exc!r}")
    if isinstance(exc, ConnectionResetError):
        return AMQPConnectionError(f"Server connection reset: {exc!r}")
    if isinstance(exc, ConnectionError):
        return AMQPConnectionError(f"Server connection error: {exc!r}")
    return AMQPConnectionError(f"Server communication error: {exc!r}")


def install() -> None:
    """Make aiormq's connections read with `FrameReader` (once per process).

    The class aiormq's `connect` builds its reader from is not aiormq's public interface:
    `FrameReader` reads only where `TOLERANT` is set, and defers to it everywhere else.
    """
    if not issubclass(aiormq.connection.FrameReceiver, FrameReader):
        aiormq.connection.FrameReceiver = FrameReader  # type: ignore[misc]  # on purpose


__all__ = ["FrameReader", "install"]
