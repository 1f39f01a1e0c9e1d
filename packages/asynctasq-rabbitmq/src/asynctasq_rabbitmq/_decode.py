"""The three frames of a plain delivery, and a publish confirm, decoded without pamqp's
generic path.

Every task reaches a worker as ``basic.deliver``, a content header and a content body.
pamqp decodes each by walking the frame class's attributes and looking up a decoder per
type; on a worker that was idle (the dispatch-to-start path) that took 100 us for the
``basic.deliver`` alone and 60 us for the header, a third of the time from the socket read to
the driver's callback. A dispatching process reads a ``basic.ack`` (the confirm) per message.
`decode` reads these frames directly with `struct`.

It only takes what it reads completely and exactly: a header carrying any property other
than those the driver publishes with (``delivery_mode``, ``priority``, ``message_id``), a
string that is not UTF-8, a frame with bytes left over or missing, or any other frame gives
None, and pamqp decodes it as before (failing as before too, which `_frames` recovers from).
What it returns is the object pamqp returns for the same bytes: the same class, built the
same way (pamqp sets decoded values on a default instance without validating them again).
"""

from __future__ import annotations

import struct

from pamqp import constants
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.frame import FrameTypes
from pamqp.header import ContentHeader

_FRAME_HEAD = struct.Struct(">BHI")
_HEAD = constants.FRAME_HEADER_SIZE
_INDEX = struct.Struct(">I")
_TAG = struct.Struct(">qB")  # delivery tag (signed, as pamqp reads it), `redelivered`
_HEADER = struct.Struct(">HHQH")  # class, weight, body size, first property flags

_DELIVER = Basic.Deliver.index
_ACK = Basic.Ack.index
_DELIVERY_MODE = Basic.Properties.flags["delivery_mode"]
_PRIORITY = Basic.Properties.flags["priority"]
_MESSAGE_ID = Basic.Properties.flags["message_id"]
_KNOWN = _DELIVERY_MODE | _PRIORITY | _MESSAGE_ID  # bit 0 (more flags) is not among them


def decode(data: bytes) -> tuple[int, int, FrameTypes] | None:
    """``(bytes used, channel, frame)`` as `pamqp.frame.unmarshal` returns it, or None
    where this fast path does not apply (see the module docstring)."""
    if len(data) <= _HEAD:
        return None
    frame_type, channel, size = _FRAME_HEAD.unpack_from(data)
    end = _HEAD + size
    if size == 0 or len(data) <= end or data[end] != constants.FRAME_END:
        return None
    try:
        if frame_type == constants.FRAME_BODY:
            frame: FrameTypes | None = ContentBody(data[_HEAD:end])
        elif frame_type == constants.FRAME_METHOD:
            frame = _method(data, end)
        elif frame_type == constants.FRAME_HEADER:
            frame = _header(data, end)
        else:
            return None
    except (struct.error, ValueError, IndexError):  # UnicodeDecodeError is a ValueError
        return None
    if frame is None:
        return None
    return end + 1, channel, frame


def _method(data: bytes, end: int) -> Basic.Deliver | Basic.Ack | None:
    index = _INDEX.unpack_from(data, _HEAD)[0]
    if index == _DELIVER:
        return _deliver(data, end)
    if index == _ACK:
        return _ack(data, end)
    return None


def _ack(data: bytes, end: int) -> Basic.Ack | None:
    if end != _HEAD + 4 + _TAG.size:
        return None
    delivery_tag, bits = _TAG.unpack_from(data, _HEAD + 4)
    frame = Basic.Ack()
    frame.delivery_tag = delivery_tag
    frame.multiple = bool(bits & 1)
    return frame


def _deliver(data: bytes, end: int) -> Basic.Deliver | None:
    consumer_tag, at = short_str(data, _HEAD + 4)
    delivery_tag, bits = _TAG.unpack_from(data, at)
    exchange, at = short_str(data, at + 9)
    routing_key, at = short_str(data, at)
    if at != end:
        return None
    frame = Basic.Deliver()
    frame.consumer_tag = consumer_tag
    frame.delivery_tag = delivery_tag
    frame.redelivered = bool(bits & 1)
    frame.exchange = exchange
    frame.routing_key = routing_key
    return frame


def _header(data: bytes, end: int) -> ContentHeader | None:
    class_id, weight, body_size, flags = _HEADER.unpack_from(data, _HEAD)
    if flags & ~_KNOWN:
        return None
    at = _HEAD + _HEADER.size
    properties = Basic.Properties()
    if flags & _DELIVERY_MODE:
        properties.delivery_mode = data[at]
        at += 1
    if flags & _PRIORITY:
        properties.priority = data[at]
        at += 1
    if flags & _MESSAGE_ID:
        properties.message_id, at = short_str(data, at)
    if at != end:
        return None
    header = ContentHeader(weight, body_size, properties)
    header.class_id = class_id
    return header


def short_str(data: bytes, at: int, errors: str = "strict") -> tuple[str, int]:
    """The AMQP short string at `at` and the offset after it (`errors`: as `bytes.decode`).

    Raises:
        ValueError: it runs past the end of `data`, or is not UTF-8 (strict).
        IndexError: `at` is past the end of `data`.
    """
    length = data[at]
    start = at + 1
    stop = start + length
    if stop > len(data):
        raise ValueError("short string past the end of the frame")
    return data[start:stop].decode("utf-8", errors), stop


__all__ = ["decode", "short_str"]
