"""Receiving: long polls over one or several queues, lease correction, early messages.

* One queue: one ReceiveMessage long poll (``WaitTimeSeconds`` from `wait`); when 10 came
  back and more were asked for, a few short polls follow at once.
* Several queues: short polls in the order given (earlier queues first); when all are
  empty, long polls on all of them at once. Whatever comes back beyond `limit` is kept for
  the next call, handed out with what is left of its lease.
* Leases: SQS sets one visibility timeout per receive. The driver receives with the lease
  the queue's last message wanted and corrects the few that want another
  (ChangeMessageVisibilityBatch), so `Delivery.visibility_timeout` is what each task asked
  for, or, when the correction fails, what SQS granted.
* Early messages: a delay longer than SQS's 900 s is sent as 900 s plus a due time; when
  such a message arrives before it is due it is sent again with the time left (at most
  900 s) and the early copy deleted. It is not delivered and its receive is not counted.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from asynctasq.drivers.base import DEFAULT_VISIBILITY_TIMEOUT, Delivery
from asynctasq_sqs import _attributes as attr
from asynctasq_sqs._batch import change_visibility_batches, delete_batches, send_batches
from asynctasq_sqs._urls import QueueUrls, is_missing_queue
from asynctasq_sqs.errors import QueueNotFoundError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

logger = logging.getLogger("asynctasq_sqs")
MAX_CORRECTED_LEASE = attr.MAX_VISIBILITY - attr.LEASE_LIMIT_MARGIN
"""Longest lease set on a message just received: SQS counts its 12-hour limit from the
receive, so asking for all of it a moment later is refused (and with it the batch's other
corrections, which would then keep the receive's lease)."""

FIRST_LEASE = 30
"""Seconds the first receive from a queue leases for, before the queue's usual lease is known."""
EARLY_TOLERANCE = 0.05
"""Seconds before its due time a message is still delivered rather than re-deferred."""
DRAIN_LEASE = 30
"""Lease for messages received only to be deleted (purge fallback)."""


class Receiver:
    """The dequeue side of one `SQSDriver`.

    Args:
        urls: Queue URL resolver.
        visibility_timeout: Fixed lease for every receive, or None for each task's own.
        wait_time_seconds: Longest single long poll (0-20).
        max_message_size: SQS message size limit (for re-deferred messages).
        concurrency: Most batch requests in flight at once.
        bury: Dead-letters a received message whose attributes cannot be read, with why
            (never raises).
    """

    def __init__(
        self,
        urls: QueueUrls,
        *,
        visibility_timeout: int | None,
        wait_time_seconds: int,
        max_message_size: int,
        concurrency: int,
        bury: Callable[[Delivery, str], Awaitable[None]],
    ) -> None:
        self._urls = urls
        self._bury = bury
        self._fixed = visibility_timeout
        self._longest_poll = wait_time_seconds
        self._max_size = max_message_size
        self._concurrency = concurrency
        self._lease_hint: dict[str, int] = {}  # queue URL -> lease its last message wanted
        self._buffer: dict[str, deque[tuple[Delivery, float]]] = {}  # queue -> (d, received)

    async def dequeue(
        self, client: SQSClient, queues: Sequence[str], *, limit: int, wait: float
    ) -> list[Delivery]:
        """Lease up to `limit` messages from `queues` (earlier first), waiting up to `wait`."""
        out = self._from_buffer(queues, limit)
        if out:
            return out
        urls = [await self._urls.url(client, queue) for queue in queues]
        if len(queues) > 1:
            for queue, url in zip(queues, urls, strict=True):
                out += await self.receive(client, queue, url, limit - len(out), wait=0)
                if len(out) >= limit:
                    return out
            if out or wait <= 0:
                return out
        polled = len(queues) > 1  # every queue was just short-polled
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            seconds = min(int(left), self._longest_poll) if left > 0 else 0
            if seconds == 0 and polled:
                if left <= 0:
                    return []
                # SQS waits in whole seconds: sleep out the fraction, then look once more.
                await asyncio.sleep(left)
                return await self._poll(client, queues, urls, limit, 0)
            out = await self._poll(client, queues, urls, limit, seconds)
            polled = True
            if out:
                return out

    async def _poll(
        self,
        client: SQSClient,
        queues: Sequence[str],
        urls: Sequence[str],
        limit: int,
        seconds: int,
    ) -> list[Delivery]:
        if len(queues) == 1:
            return await self.receive(client, queues[0], urls[0], limit, wait=seconds)
        return await self._poll_all(client, queues, urls, limit, seconds)

    def drain_buffer(self) -> list[Delivery]:
        """Take every message received but not handed out (to release them)."""
        held = [d for queue in self._buffer.values() for d, _ in queue]
        self._buffer.clear()
        return held

    def _from_buffer(self, queues: Sequence[str], limit: int) -> list[Delivery]:
        out: list[Delivery] = []
        now = time.monotonic()
        for queue in queues:
            held = self._buffer.get(queue)
            while held and len(out) < limit:
                delivery, received_at = held.popleft()
                left = delivery.visibility_timeout - (now - received_at)
                if left >= 1.0:
                    delivery.visibility_timeout = left
                    out.append(delivery)
                else:  # its lease is about to end: SQS hands it out again soon
                    logger.debug("dropping held message %s: lease ran out", delivery.task_id)
        return out

    async def _poll_all(
        self,
        client: SQSClient,
        queues: Sequence[str],
        urls: Sequence[str],
        limit: int,
        seconds: int,
    ) -> list[Delivery]:
        results = await asyncio.gather(
            *(
                self.receive(client, queue, url, limit, wait=seconds)
                for queue, url in zip(queues, urls, strict=True)
            ),
            return_exceptions=True,
        )
        got: list[Delivery] = []
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                got += result
        if errors and not got:
            raise errors[0]
        for error in errors:
            logger.warning("long poll failed: %r", error)
        now = time.monotonic()
        for delivery in got[limit:]:
            self._buffer.setdefault(delivery.queue, deque()).append((delivery, now))
        return got[:limit]

    async def receive(
        self, client: SQSClient, queue: str, url: str, count: int, *, wait: int
    ) -> list[Delivery]:
        """Up to `count` deliveries from one queue (several calls when `count` > 10)."""
        first, full = await self._receive_once(client, queue, url, min(count, attr.MAX_BATCH), wait)
        if not full or count <= attr.MAX_BATCH:
            return first
        rest = count - attr.MAX_BATCH
        sizes = [min(attr.MAX_BATCH, rest - i) for i in range(0, rest, attr.MAX_BATCH)]
        more = await asyncio.gather(
            *(self._receive_once(client, queue, url, n, 0) for n in sizes),
            return_exceptions=True,
        )
        for result in more:
            if isinstance(result, BaseException):
                logger.warning("receive failed: %r", result)  # the first batch is still good
            else:
                first += result[0]
        return first

    async def _receive_once(
        self, client: SQSClient, queue: str, url: str, count: int, wait: int
    ) -> tuple[list[Delivery], bool]:
        granted = self._fixed or self._lease_hint.get(url, FIRST_LEASE)
        asked_at = time.monotonic()  # no later than SQS's receive
        try:
            reply = await client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait,
                VisibilityTimeout=granted,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except ClientError as exc:
            if is_missing_queue(exc):
                self._urls.forget(url)
                raise QueueNotFoundError(f"SQS queue for {queue!r} ({url}) does not exist") from exc
            raise
        messages = reply.get("Messages", [])
        if not messages:
            return [], False
        now = time.time()
        deliveries: list[Delivery] = []
        early: list[attr.Received] = []
        corrections: list[tuple[int, int]] = []  # (index in deliveries, wanted lease)
        malformed: list[tuple[Delivery, str]] = []
        for message in messages:
            received = attr.read(message)
            if received.malformed is not None:
                delivery = _delivery(queue, url, received, granted, granted, asked_at)
                malformed.append((delivery, received.malformed))
                continue
            if received.due is not None and received.due - now > EARLY_TOLERANCE:
                early.append(received)
                continue
            asked = received.visibility or int(DEFAULT_VISIBILITY_TIMEOUT)
            wanted = self._fixed or min(max(asked, 1), MAX_CORRECTED_LEASE)
            if wanted != granted:
                corrections.append((len(deliveries), wanted))
            deliveries.append(_delivery(queue, url, received, asked, wanted, asked_at))
            if self._fixed is None:
                self._lease_hint[url] = wanted
        if corrections:
            await self._correct_leases(client, url, deliveries, corrections, granted)
        if early:
            await self._redefer(client, url, early, now)
        for delivery, why in malformed:
            await self._bury(delivery, why)
        return deliveries, len(messages) == count

    async def _correct_leases(
        self,
        client: SQSClient,
        url: str,
        deliveries: list[Delivery],
        corrections: list[tuple[int, int]],
        granted: int,
    ) -> None:
        leases = [(_handle(deliveries[i]), wanted) for i, wanted in corrections]
        try:
            failed = await change_visibility_batches(
                client, url, leases, concurrency=self._concurrency
            )
            kept = [corrections[int(f["Id"])][0] for f in failed]
        except Exception:
            logger.warning("could not set per-task leases; keeping %d s", granted, exc_info=True)
            kept = [i for i, _ in corrections]
        for i in kept:
            deliveries[i].visibility_timeout = float(granted)

    async def _redefer(
        self, client: SQSClient, url: str, early: list[attr.Received], now: float
    ) -> None:
        envelopes = [
            attr.envelope(
                task_id=r.task_id,
                body=r.body,
                encoding=r.encoding,
                attempts=r.attempts,  # this receive was no delivery
                visibility=r.visibility or int(DEFAULT_VISIBILITY_TIMEOUT),
                delay=(r.due or now) - now,
            )
            for r in early
        ]
        try:
            await send_batches(
                client,
                url,
                envelopes,
                max_batch_bytes=self._max_size,
                concurrency=self._concurrency,
            )
        except Exception:
            logger.warning(
                "could not re-defer %d early message(s); they return when their lease ends",
                len(early),
                exc_info=True,
            )
            return
        try:
            await delete_batches(
                client, url, [r.receipt_handle for r in early], concurrency=self._concurrency
            )
        except Exception:
            logger.warning(
                "re-deferred messages may run twice: old copies not deleted", exc_info=True
            )

    async def drain(self, client: SQSClient, queue: str, url: str) -> int:
        """Receive and delete every ready message of `queue`; returns how many."""
        deleted = 0
        while True:
            reply = await client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=attr.MAX_BATCH,
                WaitTimeSeconds=0,
                VisibilityTimeout=DRAIN_LEASE,
            )
            handles = [m["ReceiptHandle"] for m in reply.get("Messages", [])]
            if not handles:
                return deleted
            stale = await delete_batches(client, url, handles, concurrency=self._concurrency)
            deleted += len(handles) - len(stale)


def _delivery(
    queue: str, url: str, received: attr.Received, asked: int, lease: int, received_at: float
) -> Delivery:
    try:
        payload = attr.decode_body(received.body, received.encoding)
    except (ValueError, binascii.Error):
        payload = received.body.encode("utf-8")  # not ours: the worker dead-letters it
    return Delivery(
        task_id=received.task_id,
        queue=queue,
        payload=payload,
        attempts=received.attempts,
        receipt=attr.SQSReceipt(
            url, received.receipt_handle, received.body, received.encoding, asked, received_at
        ),
        visibility_timeout=float(lease),
    )


def _handle(delivery: Delivery) -> str:
    receipt = delivery.receipt
    assert isinstance(receipt, attr.SQSReceipt)
    return receipt.receipt_handle
