"""How a task message is laid out in SQS: body encoding, message attributes, sizes.

The body is the task payload itself when it is text SQS accepts (the core's payload is
UTF-8 JSON, so nearly always), else its base64 form, flagged by an attribute. Everything
the driver needs besides the payload rides in a handful of short message attributes.
"""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asynctasq.core.options import MAX_SECONDS

if TYPE_CHECKING:
    from types_aiobotocore_sqs.type_defs import (
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
    )

MAX_BATCH = 10
"""Entries per SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch call."""
MAX_DELAY = 900
"""Longest native SQS delay (DelaySeconds), in seconds."""
MAX_VISIBILITY = 43_200
"""Longest SQS visibility timeout (12 hours), in seconds."""
SQS_MESSAGE_LIMIT = 262_144
"""SQS's message size limit in bytes (body plus attribute names, types and values)."""
RETRY_HEADROOM = 64
"""Bytes kept free at dispatch so a retry's extra attributes (attempts, due time) still fit."""

TASK_ID = "atq.task_id"
ATTEMPTS = "atq.attempts"
"""Deliveries before this message was sent (retries and re-deferrals are new messages)."""
VISIBILITY = "atq.visibility"
"""Lease length the task asked for, whole seconds."""
DUE = "atq.due"
"""Unix time the message becomes due, set only when the delay is longer than SQS allows."""
ENCODING = "atq.encoding"
"""Absent for a UTF-8 body; ``base64`` or ``empty`` otherwise."""
QUEUE = "atq.queue"
ERROR_TYPE = "atq.error_type"
ERROR_MESSAGE = "atq.error_message"
TRACEBACK = "atq.traceback"
FAILED_AT = "atq.failed_at"

BASE64 = "base64"
EMPTY = "empty"

# Characters SQS accepts in a message body or attribute (the XML 1.0 set). A body with a
# carriage return also goes as base64: SQS's older XML protocol turns CR LF into LF.
_NOT_SQS_TEXT = re.compile("[^\t\n\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_SQS_ATTRIBUTE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def encode_body(payload: bytes) -> tuple[str, str | None]:
    """The SQS body for `payload` and its encoding (None = the UTF-8 text itself)."""
    if not payload:
        return "-", EMPTY  # SQS refuses an empty body
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _NOT_SQS_TEXT.search(text) is None:
        return text, None
    return base64.b64encode(payload).decode("ascii"), BASE64


def decode_body(body: str, encoding: str | None) -> bytes:
    """The payload bytes `encode_body` turned into `body`."""
    if encoding is None:
        return body.encode("utf-8")
    if encoding == BASE64:
        return base64.b64decode(body)
    if encoding == EMPTY:
        return b""
    raise ValueError(f"unknown body encoding {encoding!r} in an SQS message")


def string(value: str) -> MessageAttributeValueTypeDef:
    """A ``String`` message attribute; characters SQS refuses become U+FFFD."""
    return {"DataType": "String", "StringValue": _NOT_SQS_ATTRIBUTE.sub("\ufffd", value)}


def clip(text: str, max_bytes: int, *, keep_end: bool = False) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, marking the cut.

    Args:
        text: The text to shorten.
        max_bytes: Most bytes to keep (the marker included).
        keep_end: Keep the end instead of the start (a traceback's last lines matter most).
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = f"[... {len(data) - max_bytes} bytes cut ...]"
    room = max(max_bytes - len(marker) - 2, 0)
    if keep_end:
        return marker + "\n" + data[len(data) - room :].decode("utf-8", "ignore")
    return data[:room].decode("utf-8", "ignore") + "\n" + marker


def number(value: float) -> MessageAttributeValueTypeDef:
    """A ``Number`` message attribute (integers without a decimal point)."""
    text = str(int(value)) if float(value).is_integer() else f"{value:.3f}"
    return {"DataType": "Number", "StringValue": text}


def message_size(body: str, attributes: Mapping[str, MessageAttributeValueTypeDef]) -> int:
    """Bytes SQS counts against its size limit: body plus each attribute's name, type, value."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name) + len(value["DataType"]) + len(value.get("StringValue", "").encode())
    return size


LEASE_LIMIT_MARGIN = 60
"""Seconds kept short of SQS's 12-hour lease limit: for the clocks, and the request's trip."""


def lease_left(received_at: float, now: float) -> int:
    """The longest lease SQS still grants, at `now`, a message received at `received_at`
    (both `time.monotonic()`); 0 or less when it grants none."""
    return math.floor(MAX_VISIBILITY - LEASE_LIMIT_MARGIN - (now - received_at))


def whole_seconds(seconds: float, *, upper: int) -> int:
    """`seconds` rounded up to a whole second (SQS's unit), within ``0..upper``."""
    return max(0, min(upper, math.ceil(seconds - 1e-6)))


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message ready to send: body, attributes, native delay and size in bytes."""

    body: str
    attributes: dict[str, MessageAttributeValueTypeDef]
    delay_seconds: int
    size: int


def envelope(
    *,
    task_id: str,
    body: str,
    encoding: str | None,
    attempts: int,
    visibility: int,
    delay: float,
    extra: Mapping[str, MessageAttributeValueTypeDef] | None = None,
) -> Envelope:
    """Lay out a task message; a delay beyond SQS's 900 s also records the due time."""
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        TASK_ID: string(task_id),
        VISIBILITY: number(visibility),
    }
    if attempts:
        attributes[ATTEMPTS] = number(attempts)
    if encoding is not None:
        attributes[ENCODING] = string(encoding)
    delay_seconds = max(0, math.ceil(delay - 1e-6))
    if delay_seconds > MAX_DELAY:
        attributes[DUE] = number(round(time.time() + delay, 3))
        delay_seconds = MAX_DELAY
    if extra:
        attributes.update(extra)
    return Envelope(body, attributes, delay_seconds, message_size(body, attributes))


def _value(attributes: Mapping[str, Any], name: str) -> str | None:
    entry = attributes.get(name)
    if entry is None:
        return None
    value = entry.get("StringValue")
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Received:
    """What the driver reads back from one received SQS message."""

    message_id: str
    receipt_handle: str
    body: str
    task_id: str
    encoding: str | None
    attempts: int
    """Deliveries before this receive (carried count plus SQS's receive count minus one)."""
    visibility: int | None
    due: float | None
    sent_at: float | None
    """Unix time SQS accepted the message."""
    attributes: Mapping[str, MessageAttributeValueOutputTypeDef]
    malformed: str | None = None
    """Why its attributes cannot be read (it is dead-lettered, never run), or None."""

    def text(self, name: str) -> str | None:
        """A String attribute's value, if present."""
        return _value(self.attributes, name)

    def number(self, name: str, high: float) -> float | None:
        """A Number attribute's value from 0 to `high`, if present and readable (NaN,
        infinities and words are not: anyone who can send to the queue writes these)."""
        try:
            return _number(self.attributes, name, 0.0, high)
        except ValueError:
            return None


MAX_CARRIED = 1_000_000_000
"""Largest delivery count an ``atq.attempts`` attribute may carry."""


def _number(attributes: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    """A numeric attribute within [low, high]; raises ValueError naming it otherwise (anyone
    who can send to the queue writes these: NaN, infinities and words included)."""
    text = _value(attributes, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} is not a number: {text[:40]!r}") from None
    if not low <= value <= high:  # NaN fails both comparisons
        raise ValueError(f"{name} is out of range: {text[:40]!r}")
    return value


def read(message: MessageTypeDef) -> Received:
    """Parse a received message; messages not sent by AsyncTasQ get their SQS id as task id.
    Numeric attributes that cannot be read leave it `malformed`, never raise: one such
    message must not cost the others of its batch."""
    attributes: Mapping[str, MessageAttributeValueOutputTypeDef] = message.get(
        "MessageAttributes", {}
    )
    system = message.get("Attributes", {})
    receive_count = int(system.get("ApproximateReceiveCount", "1"))  # SQS's own
    malformed: str | None = None
    try:
        carried = _number(attributes, ATTEMPTS, 0, MAX_CARRIED)
        visibility = _number(attributes, VISIBILITY, 0, MAX_SECONDS)
        due = _number(attributes, DUE, 0, time.time() + MAX_SECONDS)
    except ValueError as exc:
        carried = visibility = due = None
        malformed = str(exc)
    sent = system.get("SentTimestamp")
    message_id = message.get("MessageId", "")
    return Received(
        message_id=message_id,
        receipt_handle=message["ReceiptHandle"],
        body=message.get("Body", ""),
        task_id=_value(attributes, TASK_ID) or message_id,
        encoding=_value(attributes, ENCODING),
        attempts=int(carried or 0) + max(receive_count - 1, 0),
        visibility=int(visibility) if visibility is not None else None,
        due=due,
        sent_at=int(sent) / 1000 if sent is not None else None,
        attributes=attributes,
        malformed=malformed,
    )


@dataclass(frozen=True, slots=True)
class SQSReceipt:
    """The lease token in `Delivery.receipt`: where the message is and how to re-send it."""

    queue_url: str
    receipt_handle: str
    body: str
    encoding: str | None
    visibility: int
    received_at: float
    """`time.monotonic()` when the receive was asked for: SQS counts its 12-hour limit on a
    message's lease from the receive."""
