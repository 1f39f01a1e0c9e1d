"""AMQP message properties the driver writes and reads: headers, ids, attempt counts."""

from __future__ import annotations

from typing import Any

from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.common import FieldTable

from asynctasq.drivers.base import MAX_PRIORITY, MIN_PRIORITY

PERSISTENT = 2
"""`delivery_mode` of a message the broker writes to disk."""

ATTEMPTS = "x-asynctasq-attempts"
"""Deliveries counted before the message was last published (retry and release republish)."""
QUEUE = "x-asynctasq-queue"
"""The work queue a dead letter came from."""
EXCEPTION_TYPE = "x-asynctasq-exception-type"
EXCEPTION_MESSAGE = "x-asynctasq-exception-message"
TRACEBACK = "x-asynctasq-traceback"
FAILED_AT = "x-asynctasq-failed-at"
"""ISO 8601 UTC time of dead-lettering."""
DELIVERY_COUNT = "x-delivery-count"
"""Set by quorum queues: how often the message was returned (nack, lost channel)."""


MAX_COUNT = 2**31 - 1
"""Most a count header is read as. Anyone may publish any header, and a count the driver
writes back (plus one) must stay encodable: AMQP field tables hold at most 64-bit integers,
and a count this high is far past any task's attempts anyway."""


def int_header(value: object) -> int:
    """A count header's value, 0 when absent or not a number, capped to 0..`MAX_COUNT`."""
    if isinstance(value, int | float | str):
        try:
            return min(max(int(value), 0), MAX_COUNT)
        except (ValueError, OverflowError):
            return 0
    return 0


def task_properties(task_id: str, attempts: int = 0, priority: int = 0) -> Basic.Properties:
    """Properties of a task message: persistent, id = task id, attempt header when counted,
    AMQP `priority` when not 0 (a classic queue with ``x-max-priority`` orders by it)."""
    headers: FieldTable | None = {ATTEMPTS: attempts} if attempts else None
    return Basic.Properties(
        delivery_mode=PERSISTENT,
        message_id=task_id,
        headers=headers,
        priority=priority or None,
    )


def priority_of(message: DeliveredMessage) -> int:
    """The message's priority, kept when the driver republishes it (retry, release, dead
    letter): the AMQP `priority` property, 0 when absent, capped to ``MIN_PRIORITY``..
    ``MAX_PRIORITY`` (anyone may publish 0-255)."""
    priority = message.header.properties.priority
    if type(priority) is not int:
        return MIN_PRIORITY
    return min(max(priority, MIN_PRIORITY), MAX_PRIORITY)


def headers_of(message: DeliveredMessage) -> dict[str, Any]:
    """The message's headers (an empty dict when it has none)."""
    headers = message.header.properties.headers
    return dict(headers) if headers else {}


def task_id_of(message: DeliveredMessage) -> str:
    """The task id: the AMQP `message_id` the driver set at publish."""
    return message.header.properties.message_id or ""


def attempts_of(message: DeliveredMessage) -> int:
    """Deliveries of this message before this one.

    The `ATTEMPTS` header counts deliveries up to the last publish (a retry republishes);
    the broker counts returns since then: quorum queues exactly in `x-delivery-count`, classic
    queues only as the `redelivered` flag (the driver then republishes the message with this
    count in the header before handing it out, see `RabbitMQDriver`).
    """
    headers = message.header.properties.headers or {}
    base = int_header(headers.get(ATTEMPTS))
    returned = int_header(headers.get(DELIVERY_COUNT))
    redelivered = bool(getattr(message.delivery, "redelivered", False))
    return min(base + max(returned, 1 if redelivered else 0), MAX_COUNT)


__all__ = [
    "ATTEMPTS",
    "DELIVERY_COUNT",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_TYPE",
    "FAILED_AT",
    "MAX_COUNT",
    "PERSISTENT",
    "QUEUE",
    "TRACEBACK",
    "attempts_of",
    "headers_of",
    "int_header",
    "priority_of",
    "task_id_of",
    "task_properties",
]
