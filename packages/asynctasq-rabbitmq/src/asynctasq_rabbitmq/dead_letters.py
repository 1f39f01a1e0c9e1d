"""Dead letters on the broker: one durable queue per work queue, errors in the headers.

A dead letter is the original payload, published (confirmed) to ``<queue>.dead`` with headers
naming the work queue, the exception type and message, the traceback, the delivery count and
the time, before the failed delivery is acked. Listing reads the first `limit` letters of each
dead-letter queue (the oldest: the queue is first in, first out). Listing, retrying and
purging by task id scan the dead-letter queues (`asynctasq_rabbitmq.scan`): every dead letter
of a scanned queue travels to the client once per call, and scans of the same queue at the
same time see each other's messages as missing. Purging a whole queue is a single
`queue.purge`.

AMQP headers travel in one frame (131 072 bytes by default; a larger one makes the broker
close the whole connection), so the exception type is cut to `MAX_TYPE_BYTES` of UTF-8, the
message to `MAX_MESSAGE_BYTES` and the traceback to its last `MAX_TRACEBACK_BYTES`: bytes, not
characters, as a character can take four.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from aiormq.abc import AbstractConnection, DeliveredMessage
from pamqp.commands import Basic
from pamqp.common import FieldTable

from asynctasq.drivers.base import UNKNOWN_FAILED_AT, DeadLetter, Delivery, Failure
from asynctasq_rabbitmq import messages as m
from asynctasq_rabbitmq.scan import passive_count, scan
from asynctasq_rabbitmq.topology import Topology

MAX_TYPE_BYTES = 1024
MAX_MESSAGE_BYTES = 8 * 1024
MAX_TRACEBACK_BYTES = 32 * 1024


def _utf8(text: str) -> bytes:
    # A lone surrogate (an error text built from undecodable bytes) cannot be sent as is.
    return text.encode("utf-8", "backslashreplace")


def _clip_head(text: str, limit: int) -> str:
    raw = _utf8(text)
    if len(raw) <= limit:
        return raw.decode("utf-8")
    return raw[:limit].decode("utf-8", "ignore") + " ... (cut)"  # "ignore": a cut character


def _clip_tail(text: str, limit: int) -> str:
    raw = _utf8(text)
    if len(raw) <= limit:
        return raw.decode("utf-8")
    return "(cut) ... " + raw[-limit:].decode("utf-8", "ignore")


def dead_letter_properties(
    delivery: Delivery, failure: Failure, failed_at: datetime, priority: int = 0
) -> Basic.Properties:
    """Properties of the dead letter of `delivery` (counts this delivery as an attempt); its
    `priority` travels as the AMQP property, for a retry of the dead letter to keep it."""
    headers: FieldTable = {
        m.QUEUE: delivery.queue,
        m.EXCEPTION_TYPE: _clip_head(failure.exception_type, MAX_TYPE_BYTES),
        m.EXCEPTION_MESSAGE: _clip_head(failure.message, MAX_MESSAGE_BYTES),
        m.TRACEBACK: _clip_tail(failure.traceback, MAX_TRACEBACK_BYTES),
        m.ATTEMPTS: delivery.attempts + 1,
        m.FAILED_AT: failed_at.isoformat(),
    }
    return Basic.Properties(
        delivery_mode=m.PERSISTENT,
        message_id=delivery.task_id,
        headers=headers,
        timestamp=failed_at,
        priority=priority or None,
    )


def parse_dead_letter(message: DeliveredMessage, queue: str) -> DeadLetter:
    """The `DeadLetter` stored in `message`, found in the dead-letter queue of `queue`."""
    headers = m.headers_of(message)
    failed_at_text = headers.get(m.FAILED_AT)
    try:  # a time no worker writes reads as unknown in `DeadLetter`
        failed_at = datetime.fromisoformat(str(failed_at_text))
    except ValueError:
        failed_at = UNKNOWN_FAILED_AT
    return DeadLetter(
        task_id=m.task_id_of(message),
        queue=str(headers.get(m.QUEUE, queue)),
        payload=message.body,
        failure=Failure(
            exception_type=str(headers.get(m.EXCEPTION_TYPE, "")),
            message=str(headers.get(m.EXCEPTION_MESSAGE, "")),
            traceback=str(headers.get(m.TRACEBACK, "")),
        ),
        attempts=m.int_header(headers.get(m.ATTEMPTS)),
        failed_at=failed_at,
    )


class DeadLetters:
    """List, retry and purge the dead letters of one driver.

    Args:
        topology: Names.
        connection: Returns the current underlying AMQP connection.
        queue_names: Every known work queue (for calls without a queue filter).
        requeue: Publishes (confirmed) a payload to a work queue, ready now, fresh attempts,
            with a priority.
    """

    def __init__(
        self,
        topology: Topology,
        connection: Callable[[], Awaitable[AbstractConnection]],
        queue_names: Callable[[], Awaitable[list[str]]],
        requeue: Callable[[str, str, bytes, int], Awaitable[None]],
    ) -> None:
        self._topology = topology
        self._connection = connection
        self._queue_names = queue_names
        self._requeue = requeue

    async def _queues(self, queue: str | None) -> list[str]:
        return [queue] if queue is not None else await self._queue_names()

    async def list(
        self, *, queue: str | None, task_ids: Sequence[str] | None, limit: int
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids."""
        wanted = set(task_ids) if task_ids is not None else None
        found: list[DeadLetter] = []
        connection = await self._connection()
        # A dead-letter queue is first in, first out: its oldest letters are its first ones,
        # so only those travel. By task id, every letter is read.
        first = max(limit, 0) if wanted is None else None
        for name in await self._queues(queue):
            async with scan(connection, self._topology.dead_queue(name), first) as held:
                found.extend(
                    parse_dead_letter(message, name)
                    for message in held.messages
                    if wanted is None or m.task_id_of(message) in wanted
                )
        found.sort(key=lambda dead: dead.failed_at)
        return found[: max(limit, 0)]

    async def retry(self, *, queue: str | None, task_ids: Sequence[str] | None) -> int:
        """Publish matching dead letters back to their queues (confirmed), then remove them."""
        wanted = set(task_ids) if task_ids is not None else None
        moved = 0
        connection = await self._connection()
        for name in await self._queues(queue):
            async with scan(connection, self._topology.dead_queue(name)) as held:
                for message in held.messages:
                    task_id = m.task_id_of(message)
                    if wanted is not None and task_id not in wanted:
                        continue
                    dead = parse_dead_letter(message, name)
                    await self._requeue(dead.queue, task_id, message.body, m.priority_of(message))
                    await held.ack(message)
                    moved += 1
        return moved

    async def purge(self, *, queue: str | None, task_ids: Sequence[str] | None) -> int:
        """Delete matching dead letters; a whole queue goes in one `queue.purge`."""
        connection = await self._connection()
        removed = 0
        for name in await self._queues(queue):
            dead_queue = self._topology.dead_queue(name)
            if task_ids is None:
                removed += await _purge_queue(connection, dead_queue)
                continue
            wanted = set(task_ids)
            async with scan(connection, dead_queue) as held:
                for message in held.messages:
                    if m.task_id_of(message) in wanted:
                        await held.ack(message)
                        removed += 1
        return removed


async def _purge_queue(connection: AbstractConnection, name: str) -> int:
    if await passive_count(connection, name) is None:
        return 0
    channel = await connection.channel(publisher_confirms=False)
    try:
        purged = await channel.queue_purge(name)
    finally:
        await channel.close()
    return int(purged.message_count or 0)


__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_TRACEBACK_BYTES",
    "MAX_TYPE_BYTES",
    "DeadLetters",
    "dead_letter_properties",
    "parse_dead_letter",
]
