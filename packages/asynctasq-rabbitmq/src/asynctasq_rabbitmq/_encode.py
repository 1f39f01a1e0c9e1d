"""The three frames of a task's publish, encoded without pamqp's generic path.

Every dispatch sends ``basic.publish``, a content header and a content body. pamqp encodes
each by walking the frame class's attributes and looking up an encoder per type: under a
profiler, 140 of the 370 us aiormq's `basic_publish` took per dispatch on a 2-core host.
`encode` writes these frames directly with `struct`.

It returns exactly the bytes `pamqp.frame.marshal` returns, or None where it does not apply
(then pamqp encodes the frame, and raises what it raises): a header with any property other
than ``delivery_mode``, ``priority`` and ``message_id`` set (a retry's attempt header among
them), a value of another type or out of range, a name too long. Like pamqp, it validates
``basic.publish`` first, so an exchange name it refuses fails the same way.

`install` wraps `pamqp.frame.marshal` for the whole process: the bytes are the same for any
caller.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pamqp.frame
from pamqp import constants
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

_Marshal = Callable[[pamqp.frame.FrameTypes, int], bytes]

_FRAME_HEAD = struct.Struct(">BHI")
_END = constants.FRAME_END_CHAR
_PUBLISH = struct.Struct(">Ih")  # method index, ticket (a signed short, as pamqp writes it)
_HEADER = struct.Struct(">HxxQH")  # class, weight 0, body size, property flags

_FLAGS = Basic.Properties.flags
_DELIVERY_MODE = _FLAGS["delivery_mode"]
_PRIORITY = _FLAGS["priority"]
_MESSAGE_ID = _FLAGS["message_id"]
_OTHERS = tuple(
    name
    for name in Basic.Properties.__slots__
    if name not in ("delivery_mode", "priority", "message_id")
)


def encode(frame: object, channel: int) -> bytes | None:
    """`pamqp.frame.marshal(frame, channel)`, or None (see the module docstring)."""
    kind = type(frame)
    try:
        if kind is ContentBody:
            payload = frame.value  # type: ignore[attr-defined]
            if type(payload) is not bytes:
                return None
            return _frame(constants.FRAME_BODY, channel, payload)
        if kind is Basic.Publish:
            publish = _publish(frame)  # type: ignore[arg-type]
            return None if publish is None else _frame(constants.FRAME_METHOD, channel, publish)
        if kind is ContentHeader:
            header = _header(frame)  # type: ignore[arg-type]
            return None if header is None else _frame(constants.FRAME_HEADER, channel, header)
    # Out of range, not UTF-8 (UnicodeEncodeError), refused by `validate`, or a field deleted
    # (pamqp writes a missing one as 0): pamqp decides, and raises its own error.
    except (struct.error, ValueError, AttributeError):
        return None
    return None


def _frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_HEAD.pack(frame_type, channel, len(payload)) + payload + _END


def _publish(frame: Basic.Publish) -> bytes | None:
    ticket, mandatory, immediate = frame.ticket, frame.mandatory, frame.immediate
    if type(ticket) is not int or type(mandatory) is not bool or type(immediate) is not bool:
        return None
    exchange, routing_key = frame.exchange, frame.routing_key
    if type(exchange) is not str or type(routing_key) is not str:
        return None
    frame.validate()  # as pamqp's marshal does first
    return (
        _PUBLISH.pack(Basic.Publish.index, ticket)
        + _short_str(exchange)
        + _short_str(routing_key)
        + bytes((mandatory | immediate << 1,))
    )


def _header(frame: ContentHeader) -> bytes | None:
    properties = frame.properties
    body_size = frame.body_size
    if type(properties) is not Basic.Properties or type(body_size) is not int:
        return None
    for name in _OTHERS:
        value = getattr(properties, name)
        if value is not None and value != "":
            return None
    flags = 0
    parts = b""
    delivery_mode, priority = properties.delivery_mode, properties.priority
    message_id = properties.message_id
    if delivery_mode is not None:
        if type(delivery_mode) is not int:
            return None
        flags |= _DELIVERY_MODE
        parts += bytes((delivery_mode,))  # ValueError outside 0..255: see `encode`
    if priority is not None:
        if type(priority) is not int:
            return None
        flags |= _PRIORITY
        parts += bytes((priority,))
    if message_id is not None and message_id != "":
        if type(message_id) is not str:
            return None
        flags |= _MESSAGE_ID
        parts += _short_str(message_id)
    return _HEADER.pack(Basic.frame_id, body_size, flags) + parts


def _short_str(value: str) -> bytes:
    """An AMQP short string.

    Raises:
        struct.error: longer than 255 bytes (pamqp then raises its own error).
        UnicodeEncodeError: not encodable as UTF-8.
    """
    data = value.encode("utf-8")
    if len(data) > 255:
        raise struct.error("short string too long")
    return bytes((len(data),)) + data


def install() -> None:
    """Wrap `pamqp.frame.marshal` once per process (see the module docstring)."""
    current: _Marshal = pamqp.frame.marshal
    if getattr(current, "_asynctasq_fast", False):
        return

    def marshal(frame_value: pamqp.frame.FrameTypes, channel_id: int) -> bytes:
        encoded = encode(frame_value, channel_id)
        return current(frame_value, channel_id) if encoded is None else encoded

    marshal._asynctasq_fast = True  # type: ignore[attr-defined]
    marshal.__wrapped__ = current  # type: ignore[attr-defined]  # pamqp's own, for tests
    pamqp.frame.marshal = marshal


__all__ = ["encode", "install"]
