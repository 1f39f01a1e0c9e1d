"""The fast encoder of a publish's frames writes exactly pamqp's bytes, or leaves the frame
to pamqp: it is installed for the whole process, so any difference would reach every user of
aiormq in it."""

from __future__ import annotations

import inspect
from typing import Any

import pamqp.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from asynctasq_rabbitmq import _encode
from asynctasq_rabbitmq._encode import encode


def _plain(frame: Any, channel: int) -> bytes:
    """pamqp's own encoding (a driver in this test process may have installed the wrapper)."""
    result: bytes = inspect.unwrap(pamqp.frame.marshal)(frame, channel)
    return result


def _agrees(frame: Any, channel: int, *, fast: bool | None = None) -> None:
    encoded = encode(frame, channel)
    if fast is not None:
        assert (encoded is not None) is fast
    try:
        expected = _plain(frame, channel)
    except Exception:
        assert encoded is None, f"pamqp refuses {frame!r}, the fast path wrote {encoded!r}"
        return
    if encoded is not None:
        assert encoded == expected


text = st.text(max_size=60)
channels = st.integers(0, 70_000)


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9\-_.:]{0,30}", fullmatch=True) | text,
    text,
    st.booleans(),
    st.booleans(),
    channels,
)
def test_a_publish_frame_is_written_as_pamqp_writes_it(
    exchange: str, key: str, mandatory: bool, immediate: bool, channel: int
) -> None:
    try:
        frame = Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)
    except ValueError:
        return  # pamqp refuses the name at construction already
    frame.immediate = immediate
    _agrees(frame, channel)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-5, 2**64 + 5),
    st.one_of(st.none(), st.integers(-2, 300), st.booleans()),
    st.one_of(st.none(), st.integers(-2, 300)),
    st.one_of(st.none(), text),
    channels,
)
def test_a_header_with_the_drivers_properties_is_written_as_pamqp_writes_it(
    size: int, delivery_mode: Any, priority: int | None, message_id: str | None, channel: int
) -> None:
    properties = Basic.Properties()
    properties.delivery_mode = delivery_mode
    properties.priority = priority
    properties.message_id = message_id
    _agrees(ContentHeader(0, size, properties), channel)


def test_the_drivers_own_header_and_publish_take_the_fast_path() -> None:
    properties = Basic.Properties(delivery_mode=2, message_id="0f3c" * 8, priority=4)
    _agrees(ContentHeader(0, 321, properties), 1, fast=True)
    publish = Basic.Publish(exchange="asynctasq", routing_key="asynctasq.q", mandatory=True)
    _agrees(publish, 1, fast=True)
    _agrees(ContentBody(b'{"v":1}'), 1, fast=True)


@pytest.mark.parametrize(
    "properties",
    [
        {"headers": {"x-asynctasq-attempts": 2}},
        {"headers": {}},
        {"content_type": "application/json", "delivery_mode": 2},
        {"app_id": "x"},
        {"correlation_id": "c", "message_id": "m"},
    ],
)
def test_a_header_with_other_properties_is_left_to_pamqp(properties: dict[str, Any]) -> None:
    _agrees(ContentHeader(0, 10, Basic.Properties(**properties)), 1, fast=False)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), channels)
def test_a_body_frame_is_written_as_pamqp_writes_it(payload: bytes, channel: int) -> None:
    _agrees(ContentBody(payload), channel)


def test_other_frames_and_unusual_values_are_left_to_pamqp() -> None:
    _agrees(Basic.Ack(3), 1, fast=False)
    publish = Basic.Publish(exchange="e", routing_key="k")
    publish.exchange = "not a valid name!"  # changed after construction: validated on write
    _agrees(publish, 1, fast=False)
    publish = Basic.Publish(exchange="e", routing_key="k")
    publish.routing_key = "\ud800"  # not encodable as UTF-8
    _agrees(publish, 1, fast=False)
    body = ContentBody(b"")
    body.value = bytearray(b"x")  # type: ignore[assignment]
    _agrees(body, 1, fast=False)


def test_install_keeps_pamqps_bytes_for_every_caller() -> None:
    _encode.install()
    _encode.install()  # once only
    frames = [
        Basic.Publish(exchange="x", routing_key="y", mandatory=True),
        ContentHeader(0, 5, Basic.Properties(delivery_mode=2, headers={"a": 1})),
        ContentBody(b"12345"),
        Basic.Ack(9),
    ]
    for frame in frames:
        assert pamqp.frame.marshal(frame, 3) == _plain(frame, 3)


@pytest.mark.parametrize("field", ["mandatory", "immediate", "ticket"])
def test_a_deleted_field_is_left_to_pamqp(field: str) -> None:
    publish = Basic.Publish(exchange="x", routing_key="r")
    delattr(publish, field)  # pamqp writes a missing field as 0
    _agrees(publish, 1, fast=False)
