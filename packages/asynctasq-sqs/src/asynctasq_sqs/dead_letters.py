"""Dead letters on SQS: one dead-letter queue per work queue (``{name}-dead``).

A dead letter is the original body with message attributes for the task id, the queue it
came from, the attempts, the exception type, message and traceback, and the time it failed.
SQS cannot look messages up by attribute, so listing, retrying and purging *scan* the
dead-letter queue: they receive its messages with a short lease, act on those that match
and hand the rest straight back (visibility 0). Scans see what SQS returns to short polls:
exact on one host, possibly partial on a very large queue (run them again).

Messages SQS moved on its own (the redrive policy: received `max_receive_count` times
without being settled, e.g. a task that kills its worker) carry no error; they are listed as
`asynctasq.errors.TaskLostError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from asynctasq.drivers.base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    LAST_MOMENT,
    DeadLetter,
    Delivery,
    Failure,
)
from asynctasq_sqs import _attributes as attr
from asynctasq_sqs._batch import change_visibility_batches, delete_batches, send_batches
from asynctasq_sqs._urls import DEAD_SUFFIX, QueueUrls

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageAttributeValueTypeDef

logger = logging.getLogger("asynctasq_sqs")

SCAN_LEASE = 30
"""Seconds a scanned dead letter stays hidden while a scan runs (returned at once after)."""
SCAN_LIMIT = 10_000
"""Most messages one scan reads from one dead-letter queue."""
MESSAGE_LIMIT = 8 * 1024
"""Most bytes kept of an exception message (the traceback gets the rest of the room)."""
LOST = "asynctasq.errors.TaskLostError"


@dataclass(frozen=True, slots=True)
class _Scanned:
    queue: str
    received: attr.Received


class DeadLetterQueues:
    """Dead-letter operations for one driver.

    Args:
        urls: The driver's queue URL resolver.
        max_message_size: The SQS message size limit in bytes.
        concurrency: Most batch requests in flight at once.
    """

    def __init__(self, urls: QueueUrls, *, max_message_size: int, concurrency: int) -> None:
        self._urls = urls
        self._max_size = max_message_size
        self._concurrency = concurrency

    # -- writing ---------------------------------------------------------------------------
    def envelope(
        self, delivery: Delivery, receipt: attr.SQSReceipt, failure: Failure
    ) -> attr.Envelope:
        """The dead-letter message for `delivery`, error texts cut to fit the size limit."""
        fixed: dict[str, MessageAttributeValueTypeDef] = {
            attr.QUEUE: attr.string(delivery.queue),
            attr.ERROR_TYPE: attr.string(attr.clip(failure.exception_type or "?", 1024)),
            attr.FAILED_AT: attr.number(round(time.time(), 3)),
        }
        base = attr.envelope(
            task_id=delivery.task_id,
            body=receipt.body,
            encoding=receipt.encoding,
            attempts=delivery.attempts + 1,
            visibility=receipt.visibility,
            delay=0,
            extra=fixed,
        )
        overhead = len(attr.ERROR_MESSAGE) + len(attr.TRACEBACK) + 2 * len("String")
        room = max(self._max_size - base.size - overhead, 0)
        message = attr.clip(failure.message, min(MESSAGE_LIMIT, room // 4))
        traceback = attr.clip(failure.traceback, room - len(message.encode("utf-8")), keep_end=True)
        texts: dict[str, MessageAttributeValueTypeDef] = {}
        if message:
            texts[attr.ERROR_MESSAGE] = attr.string(message)
        if traceback:
            texts[attr.TRACEBACK] = attr.string(traceback)
        attributes = {**base.attributes, **texts}
        return attr.Envelope(base.body, attributes, 0, attr.message_size(base.body, attributes))

    async def add(
        self, client: SQSClient, delivery: Delivery, receipt: attr.SQSReceipt, failure: Failure
    ) -> None:
        """Store `delivery` as a dead letter (the caller then deletes the original)."""
        dead_url = await self._urls.dead_url(client, delivery.queue)
        message = self.envelope(delivery, receipt, failure)
        await client.send_message(
            QueueUrl=dead_url, MessageBody=message.body, MessageAttributes=message.attributes
        )

    # -- reading -----------------------------------------------------------------------------
    async def read(
        self,
        client: SQSClient,
        *,
        queue: str | None,
        task_ids: Sequence[str] | None,
        limit: int,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids."""
        found: list[DeadLetter] = []
        for name in await self._queues(client, queue):
            dead_url = await self._urls.find(client, name, dead=True)
            if dead_url is None:
                continue
            scanned = await self._scan(client, name, dead_url)
            await self._hand_back(client, dead_url, scanned)
            found += [_dead_letter(s) for s in scanned if _matches(s, task_ids)]
        found.sort(key=lambda d: d.failed_at)
        return found[:limit]

    async def requeue(
        self, client: SQSClient, *, queue: str | None, task_ids: Sequence[str] | None
    ) -> int:
        """Send matching dead letters back to their queues (fresh attempt count), then delete
        them from the dead-letter queue. Returns how many moved."""
        moved = 0
        for name in await self._queues(client, queue):
            dead_url = await self._urls.find(client, name, dead=True)
            if dead_url is None:
                continue
            scanned = await self._scan(client, name, dead_url)
            chosen = [s for s in scanned if _matches(s, task_ids)]
            try:
                by_queue: dict[str, list[_Scanned]] = {}
                for s in chosen:
                    by_queue.setdefault(s.queue, []).append(s)
                for target, group in by_queue.items():
                    url = await self._urls.url(client, target)
                    await send_batches(
                        client,
                        url,
                        [_back_to_work(s) for s in group],
                        max_batch_bytes=self._max_size,
                        concurrency=self._concurrency,
                    )
                    # Sent and confirmed: only now may the dead letters go.
                    await delete_batches(
                        client,
                        dead_url,
                        [s.received.receipt_handle for s in group],
                        concurrency=self._concurrency,
                    )
                    moved += len(group)
            finally:
                await self._hand_back(client, dead_url, [s for s in scanned if s not in chosen])
        return moved

    async def purge(
        self, client: SQSClient, *, queue: str | None, task_ids: Sequence[str] | None
    ) -> int:
        """Delete matching dead letters; returns how many."""
        purged = 0
        for name in await self._queues(client, queue):
            dead_url = await self._urls.find(client, name, dead=True)
            if dead_url is None:
                continue
            scanned = await self._scan(client, name, dead_url)
            chosen = [s for s in scanned if _matches(s, task_ids)]
            try:
                stale = await delete_batches(
                    client,
                    dead_url,
                    [s.received.receipt_handle for s in chosen],
                    concurrency=self._concurrency,
                )
                purged += len(chosen) - len(stale)
            finally:
                await self._hand_back(client, dead_url, [s for s in scanned if s not in chosen])
        return purged

    # -- scanning ------------------------------------------------------------------------------
    async def _queues(self, client: SQSClient, queue: str | None) -> list[str]:
        if queue is not None:
            return [queue]
        names = await list_sqs_names(client, self._urls.name_prefix)
        return sorted(
            {
                q
                for n in names
                if n.endswith(DEAD_SUFFIX) and (q := self._urls.queue_of(n)) is not None
            }
        )

    async def _scan(self, client: SQSClient, queue: str, dead_url: str) -> list[_Scanned]:
        scanned: list[_Scanned] = []
        while len(scanned) < SCAN_LIMIT:
            reply = await client.receive_message(
                QueueUrl=dead_url,
                MaxNumberOfMessages=attr.MAX_BATCH,
                VisibilityTimeout=SCAN_LEASE,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            messages = reply.get("Messages", [])
            if not messages:
                break
            for message in messages:
                received = attr.read(message)
                scanned.append(_Scanned(received.text(attr.QUEUE) or queue, received))
        return scanned

    async def _hand_back(self, client: SQSClient, dead_url: str, scanned: list[_Scanned]) -> None:
        if not scanned:
            return
        try:
            await change_visibility_batches(
                client,
                dead_url,
                [(s.received.receipt_handle, 0) for s in scanned],
                concurrency=self._concurrency,
            )
        except Exception:
            # They come back by themselves after SCAN_LEASE seconds; nothing is lost.
            logger.warning("could not hand back scanned dead letters", exc_info=True)


async def list_sqs_names(client: SQSClient, prefix: str) -> list[str]:
    """Names of the SQS queues whose names start with `prefix` (all pages)."""
    names: list[str] = []
    token: str | None = None
    while True:
        if token:
            reply = await client.list_queues(
                QueueNamePrefix=prefix, MaxResults=1000, NextToken=token
            )
        else:
            reply = await client.list_queues(QueueNamePrefix=prefix, MaxResults=1000)
        names += [url.rsplit("/", 1)[-1] for url in reply.get("QueueUrls", [])]
        token = reply.get("NextToken")
        if not token:
            return names


def _matches(scanned: _Scanned, task_ids: Sequence[str] | None) -> bool:
    return task_ids is None or scanned.received.task_id in task_ids


def _dead_letter(scanned: _Scanned) -> DeadLetter:
    """The dead letter a message of a dead-letter queue holds. Anyone who can send to the
    queue writes these: a value that cannot be read is shown as what can be, so one such
    message never hides the others."""
    r = scanned.received
    failed_at = r.number(attr.FAILED_AT, LAST_MOMENT) or r.sent_at or time.time()
    error_type = r.text(attr.ERROR_TYPE)
    carried = int(r.number(attr.ATTEMPTS, attr.MAX_CARRIED) or 0)
    if error_type is None:  # moved by SQS's redrive policy, not by a worker
        failure = Failure(
            LOST,
            "SQS moved the message to the dead-letter queue: it was received too many "
            "times without being settled (see the queue's redrive policy)",
            "no traceback: no worker reported an error (workers died or lost the lease)",
        )
        attempts = carried + max(r.attempts - carried, 1)
    else:
        failure = Failure(
            error_type, r.text(attr.ERROR_MESSAGE) or "", r.text(attr.TRACEBACK) or ""
        )
        attempts = carried
    try:
        payload = attr.decode_body(r.body, r.encoding)
    except ValueError:  # an encoding no worker writes (bad base64 too): the body as sent
        payload = r.body.encode("utf-8", "surrogateescape")
    return DeadLetter(
        task_id=r.task_id,
        queue=scanned.queue,
        payload=payload,
        failure=failure,
        attempts=attempts,
        failed_at=datetime.fromtimestamp(failed_at, UTC),
    )


def _back_to_work(scanned: _Scanned) -> attr.Envelope:
    r = scanned.received
    return attr.envelope(
        task_id=r.task_id,
        body=r.body,
        encoding=r.encoding,
        attempts=0,
        visibility=r.visibility or int(DEFAULT_VISIBILITY_TIMEOUT),
        delay=0,
    )
