"""The fast decoder of a delivery's frames returns exactly what pamqp returns, or nothing.

A broker writer controls every byte of these frames, so besides well-formed frames of every
shape the driver sees, the decoder is fed mutated and cut frames: for each, it either
declines (pamqp then decodes, or fails as it always did) or agrees with pamqp.
"""

from __future__ import annotations

from typing import Any

import pamqp.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader

from asynctasq_rabbitmq import _frames
from asynctasq_rabbitmq._decode import decode


def _pamqp(data: bytes) -> Any:
    """pamqp's own decoding (the driver's wrapper, if installed, passes it through here)."""
    assert not _frames.TOLERANT.get()
    return pamqp.frame.unmarshal(data)


def _fields(frame: Any) -> Any:
    """What a frame holds, comparable with ==."""
    if isinstance(frame, ContentBody):
        return ("body", frame.value)
    if isinstance(frame, ContentHeader):
        return (
            "header",
            frame.class_id,
            frame.weight,
            frame.body_size,
            _fields(frame.properties),
        )
    return (type(frame), tuple((name, getattr(frame, name)) for name in frame.__slots__))


def _agrees(data: bytes) -> None:
    fast = decode(data)
    try:
        expected = _pamqp(data)
    except Exception:
        assert fast is None, f"pamqp refuses {data!r}, the fast path took it: {fast!r}"
        return
    if fast is None:
        return
    assert fast[0] == expected[0] and fast[1] == expected[1]
    assert type(fast[2]) is type(expected[2])
    assert _fields(fast[2]) == _fields(expected[2])


short_text = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
exchanges = st.from_regex(r"[A-Za-z0-9\-_.:]{0,30}", fullmatch=True)


def _deliver(consumer_tag: str, tag: int, redelivered: bool, exchange: str, key: str) -> bytes:
    frame = Basic.Deliver(consumer_tag, tag, redelivered, exchange, key)
    return pamqp.frame.marshal(frame, 1)


def _header(size: int, **properties: Any) -> bytes:
    return pamqp.frame.marshal(ContentHeader(0, size, Basic.Properties(**properties)), 3)


@settings(max_examples=300, deadline=None)
@given(short_text, st.integers(0, 2**63 - 1), st.booleans(), exchanges, short_text)
def test_a_deliver_frame_decodes_as_pamqp_decodes_it(
    consumer_tag: str, tag: int, redelivered: bool, exchange: str, key: str
) -> None:
    data = _deliver(consumer_tag, tag, redelivered, exchange, key)
    fast = decode(data)
    assert fast is not None  # the common frame takes the fast path
    _agrees(data)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**64 - 1),
    st.sampled_from([None, 1, 2]),
    st.one_of(st.none(), st.integers(0, 255)),
    st.one_of(st.none(), short_text),
)
def test_a_header_with_the_drivers_properties_decodes_as_pamqp_decodes_it(
    size: int, delivery_mode: int | None, priority: int | None, message_id: str | None
) -> None:
    data = _header(size, delivery_mode=delivery_mode, priority=priority, message_id=message_id)
    assert decode(data) is not None
    _agrees(data)


@pytest.mark.parametrize(
    "properties",
    [
        {"headers": {"x-asynctasq-attempts": 2}},
        {"content_type": "application/json"},
        {"timestamp": None, "app_id": "x", "delivery_mode": 2},
        {"correlation_id": "c", "message_id": "m"},
    ],
)
def test_a_header_with_other_properties_is_left_to_pamqp(properties: dict[str, Any]) -> None:
    data = _header(10, **properties)
    assert decode(data) is None
    _agrees(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1), st.booleans(), st.integers(0, 65535))
def test_a_publish_confirm_decodes_as_pamqp_decodes_it(
    tag: int, multiple: bool, channel: int
) -> None:
    data = pamqp.frame.marshal(Basic.Ack(tag, multiple), channel)
    assert decode(data) is not None
    _agrees(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_a_body_frame_decodes_as_pamqp_decodes_it(payload: bytes) -> None:
    data = pamqp.frame.marshal(ContentBody(payload), 1)
    assert decode(data) is not None
    _agrees(data)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(
        [
            _deliver("ctag", 7, True, "asynctasq", "asynctasq.default"),
            _header(42, delivery_mode=2, message_id="0a9c", priority=3),
            _header(0, message_id="x"),
            pamqp.frame.marshal(ContentBody(b'{"v":1}'), 1),
            pamqp.frame.marshal(Basic.Ack(12, True), 1),
        ]
    ),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    st.integers(0, 400),
    st.binary(max_size=3),
)
def test_a_forged_or_cut_frame_is_declined_or_read_as_pamqp_reads_it(
    frame: bytes, flips: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    data = bytearray(frame)
    for at, value in flips:
        if at < len(data):
            data[at] = value
    _agrees(bytes(data[: max(cut, 1)]) + tail)
    _agrees(bytes(data))


def test_other_frames_and_non_utf8_text_are_left_to_pamqp() -> None:
    assert decode(pamqp.frame.marshal(Basic.Nack(5), 1)) is None
    assert decode(b"AMQP\x00\x00\x09\x01") is None
    not_utf8 = bytearray(_deliver("ab", 1, False, "", "key"))
    not_utf8[12] = 0xFF  # inside the consumer tag
    assert decode(bytes(not_utf8)) is None
    with pytest.raises(PAMQPException):
        _pamqp(bytes(not_utf8))


def test_the_fast_path_serves_the_drivers_connections_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _frames.install()
    calls: list[bytes] = []

    def counting(data: bytes) -> Any:
        calls.append(data)
        return decode(data)

    monkeypatch.setattr(_frames, "fast_decode", counting)
    data = _deliver("ctag", 1, False, "", "q")
    elsewhere = pamqp.frame.unmarshal(data)
    assert calls == []  # another client's connection in the same process: pamqp alone
    token = _frames.TOLERANT.set(True)
    try:
        on_driver = pamqp.frame.unmarshal(data)
    finally:
        _frames.TOLERANT.reset(token)
    assert calls == [data]
    assert _fields(on_driver[2]) == _fields(elsewhere[2])


@pytest.mark.parametrize("tag", [1, 2**63 - 1, 2**63, 2**64 - 1])
def test_a_recovered_delivery_keeps_the_tag_pamqp_reads(tag: int) -> None:
    """The recovery of a delivery with an undecodable routing key reads its tag as pamqp
    reads the tag of any other delivery (signed), so a huge one means the same either way."""
    consumer = b"ctag"
    method = (
        Basic.Deliver.index.to_bytes(4, "big")
        + bytes((len(consumer),))
        + consumer
        + tag.to_bytes(8, "big")
        + b"\x00"
        + b"\x00"  # exchange ""
    )
    good = method + b"\x01q"
    frame = b"\x01\x00\x01" + len(good).to_bytes(4, "big") + good + b"\xce"
    expected = _pamqp(frame)[2].delivery_tag
    bad = method + b"\x01\xff"  # a routing key that is not UTF-8
    frame = b"\x01\x00\x01" + len(bad).to_bytes(4, "big") + bad + b"\xce"
    recovered = _frames._recover(frame, ValueError("not UTF-8"))
    assert recovered is not None
    assert recovered[2].delivery_tag == expected
