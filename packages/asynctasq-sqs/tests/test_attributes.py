"""Message layout: body encoding, attributes, sizes, long delays (no server needed)."""

from __future__ import annotations

import time

import pytest

from asynctasq_sqs import _attributes as attr
from asynctasq_sqs._batch import chunks


@pytest.mark.parametrize(
    "payload",
    [
        b'{"task":"x","args":[1,2]}',
        '{"name":"Zoë ✓ 漢字 😀"}'.encode(),
        bytes(range(256)),
        b"with\rcarriage return",
        b"nul\x00inside",
        b"",
        "\ufffe".encode(),
    ],
)
def test_body_round_trips(payload: bytes) -> None:
    body, encoding = attr.encode_body(payload)
    assert body  # SQS refuses empty bodies
    assert attr.decode_body(body, encoding) == payload


def test_utf8_json_goes_as_itself() -> None:
    payload = '{"to":"zoë@example.com"}'.encode()
    assert attr.encode_body(payload) == (payload.decode(), None)


def test_binary_goes_as_base64() -> None:
    assert attr.encode_body(b"\xff\x00")[1] == attr.BASE64


def test_size_counts_body_and_attributes() -> None:
    envelope = attr.envelope(
        task_id="t", body="ab", encoding=None, attempts=2, visibility=30, delay=0
    )
    expected = 2 + sum(
        len(n) + len(v["DataType"]) + len(v["StringValue"]) for n, v in envelope.attributes.items()
    )
    assert envelope.size == expected


def test_short_delay_is_native_and_rounded_up() -> None:
    envelope = attr.envelope(
        task_id="t", body="x", encoding=None, attempts=0, visibility=30, delay=1.2
    )
    assert envelope.delay_seconds == 2
    assert attr.DUE not in envelope.attributes


def test_long_delay_records_its_due_time() -> None:
    before = time.time()
    envelope = attr.envelope(
        task_id="t", body="x", encoding=None, attempts=0, visibility=30, delay=3600
    )
    assert envelope.delay_seconds == attr.MAX_DELAY
    due = float(envelope.attributes[attr.DUE]["StringValue"])
    assert before + 3600 - 0.001 <= due <= time.time() + 3600 + 0.001  # kept to the ms


def test_clip_keeps_the_end_of_a_traceback() -> None:
    text = "start\n" + "x" * 1000 + "\nthe error"
    clipped = attr.clip(text, 100, keep_end=True)
    assert len(clipped.encode()) <= 100
    assert clipped.endswith("the error")
    assert "bytes cut" in clipped
    assert attr.clip("short", 100) == "short"


def test_attribute_strings_drop_characters_sqs_refuses() -> None:
    assert attr.string("a\x00b")["StringValue"] == "a\ufffdb"
    assert attr.string("line\r\nnext")["StringValue"] == "line\r\nnext"


def test_chunks_respect_count_and_bytes() -> None:
    assert [len(c) for c in chunks(list(range(25)), size_of=lambda _: 1, max_bytes=100)] == [
        10,
        10,
        5,
    ]
    sizes = [100, 100, 100, 250, 10]
    assert list(chunks(sizes, size_of=lambda s: s, max_bytes=300)) == [
        [100, 100, 100],
        [250, 10],
    ]
