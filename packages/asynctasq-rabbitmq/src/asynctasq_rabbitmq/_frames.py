"""Frames a publisher can make undecodable must not end the worker's connection.

pamqp decodes every frame inside aiormq's connection reader, and a decoding error there closes
the whole connection: every delivery in flight on it comes back, and the message that caused
it is delivered again at once, so one message published with a ``message_id`` that is not
UTF-8, a ``timestamp`` past the year 9999, deeply nested headers or a routing key that is not
UTF-8 (RabbitMQ takes all of these as they are) stopped a worker for good. Nothing above the
reader sees the message, so the driver could not dead-letter it.

`install` wraps `pamqp.frame.unmarshal`, which aiormq calls for each frame. A frame it decodes
is returned as before. Where it fails on a connection the driver opened (`TOLERANT` is set
while it connects, so its reader task carries it; any other connection in the process fails as
it always did, its properties never set aside without its owner knowing):

* a content header (the message's properties) becomes one with its body size and
  `UnreadableProperties`, which say why; the consumer dead-letters such a message without
  handing it out (see `Consumer`);
* a ``basic.deliver`` or ``basic.get-ok`` (their routing key and exchange are the
  publisher's) is read again with undecodable text replaced: the driver never reads these
  names back, so the message goes on as any other.

Anything else still fails as it did (a frame the broker itself sent wrong).

On the driver's connections, the frames of a plain delivery and publish confirms are first
read by `asynctasq_rabbitmq._decode`, which is faster and returns the same frames, or None
for anything it does not take.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from contextvars import ContextVar

import pamqp.frame
from pamqp import constants
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from asynctasq.worker.failures import clip, printable
from asynctasq_rabbitmq._decode import decode as fast_decode
from asynctasq_rabbitmq._decode import short_str

_Frame = pamqp.frame.FrameTypes
_Unmarshal = Callable[[bytes], tuple[int, int, _Frame]]

_EXCHANGE_NAME = constants.DOMAIN_REGEX["exchange-name"]
_WHY_LIMIT = 200


class UnreadableProperties(Basic.Properties):
    """The properties of a message pamqp could not decode; `why` says what failed."""

    # No __slots__ of its own: pamqp iterates `__slots__` as the list of properties.
    why: str

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why


TOLERANT: ContextVar[bool] = ContextVar("asynctasq_rabbitmq_tolerant_frames", default=False)
"""Set while the driver opens its connection: its reader (a task made then) recovers."""


def install() -> None:
    """Wrap `pamqp.frame.unmarshal` once per process (see the module docstring)."""
    current: _Unmarshal = pamqp.frame.unmarshal
    if getattr(current, "_asynctasq_tolerant", False):
        return
    pamqp.frame.unmarshal = _tolerant(current)  # type: ignore[assignment]  # wrapped on purpose


def _tolerant(unmarshal: _Unmarshal) -> _Unmarshal:
    def tolerant_unmarshal(data: bytes) -> tuple[int, int, _Frame]:
        tolerant = TOLERANT.get()
        if tolerant:
            decoded = fast_decode(data)
            if decoded is not None:
                return decoded
        try:
            return unmarshal(data)
        except Exception as exc:  # RecursionError and OverflowError too, not only pamqp's own
            if not tolerant:
                raise
            recovered = _recover(data, exc)
            if recovered is None:
                raise
            return recovered

    tolerant_unmarshal._asynctasq_tolerant = True  # type: ignore[attr-defined]
    return tolerant_unmarshal


def _recover(data: bytes, exc: Exception) -> tuple[int, int, _Frame] | None:
    """The frame in `data` with what failed to decode set aside, or None when it is not a
    complete message frame."""
    try:
        frame_type, channel, size = struct.unpack_from(">BHI", data)
    except struct.error:
        return None
    end = constants.FRAME_HEADER_SIZE + size
    if len(data) <= end or data[end] != constants.FRAME_END:
        return None
    body = data[constants.FRAME_HEADER_SIZE : end]
    try:
        if frame_type == constants.FRAME_HEADER:
            frame: _Frame | None = _header(body, exc)
        elif frame_type == constants.FRAME_METHOD:
            frame = _method(body)
        else:
            return None
    except (struct.error, ValueError, IndexError):
        return None
    if frame is None:
        return None
    return end + 1, channel, frame


def _header(body: bytes, exc: Exception) -> ContentHeader:
    _class, weight, body_size = struct.unpack_from(">HHQ", body)
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    why = printable(clip(f"{type(cause).__name__}: {cause}", _WHY_LIMIT))
    return ContentHeader(weight, body_size, UnreadableProperties(why))


def _method(body: bytes) -> Basic.Deliver | Basic.GetOk | None:
    (index,) = struct.unpack_from(">I", body)
    reader = _Reader(body, 4)
    if index == Basic.Deliver.index:
        consumer_tag = reader.short_str()
        delivery_tag = reader.long_long()
        redelivered = bool(reader.octet() & 1)
        return Basic.Deliver(
            consumer_tag=consumer_tag,
            delivery_tag=delivery_tag,
            redelivered=redelivered,
            exchange=_exchange(reader.short_str()),
            routing_key=reader.short_str(),
        )
    if index == Basic.GetOk.index:
        delivery_tag = reader.long_long()
        redelivered = bool(reader.octet() & 1)
        exchange = _exchange(reader.short_str())
        routing_key = reader.short_str()
        return Basic.GetOk(
            delivery_tag=delivery_tag,
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
            message_count=reader.long(),
        )
    return None


def _exchange(name: str) -> str:
    """An exchange name pamqp's frame accepts ('' where the broker sent one it does not)."""
    return name if len(name) <= 127 and _EXCHANGE_NAME.fullmatch(name) else ""


class _Reader:
    """Reads AMQP fields in order, with undecodable text replaced."""

    def __init__(self, data: bytes, at: int) -> None:
        self._data = data
        self._at = at

    def octet(self) -> int:
        value = self._data[self._at]
        self._at += 1
        return value

    def long(self) -> int:
        (value,) = struct.unpack_from(">I", self._data, self._at)
        self._at += 4
        return int(value)

    def long_long(self) -> int:
        # Signed, as pamqp reads a delivery tag: the same frame reads the same either way.
        (value,) = struct.unpack_from(">q", self._data, self._at)
        self._at += 8
        return int(value)

    def short_str(self) -> str:
        value, self._at = short_str(self._data, self._at, errors="replace")
        return value
