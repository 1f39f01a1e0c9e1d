"""`SQSDriver`: AsyncTasQ on Amazon SQS standard queues, through aioboto3.

How the contract maps onto SQS:

* enqueue: SendMessage / SendMessageBatch (10 per call); delays up to 900 s are SQS's own
  ``DelaySeconds``, longer ones re-defer themselves (see `_receiver`).
* dequeue: ReceiveMessage with long polling (``WaitTimeSeconds`` up to 20, from `wait`).
* leases: the visibility timeout. SQS sets one per receive, not per message, so the driver
  receives with the queue's usual lease and corrects the odd message whose task asked for
  another (ChangeMessageVisibilityBatch); `Delivery.visibility_timeout` is what was granted.
* attempts: SQS's ``ApproximateReceiveCount`` - 1, plus a count carried in a message
  attribute by retries (a retry is a new message: sent and confirmed before the old one is
  deleted, so a crash in between can only duplicate, never lose).
* dead letters: a ``{queue}-dead`` queue per queue (`asynctasq_sqs.dead_letters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig

from asynctasq.drivers.base import DeadLetter, Delivery, Failure, OutgoingMessage, QueueStats
from asynctasq.errors import MalformedMessageError
from asynctasq.worker.failures import clip, printable
from asynctasq_sqs import _attributes as attr
from asynctasq_sqs._batch import (
    change_visibility_batches,
    delete_batches,
    gather_bounded,
    send_batches,
)
from asynctasq_sqs._http import abandon_client
from asynctasq_sqs._inspection import purge_queue, queue_names, queue_stats
from asynctasq_sqs._receiver import Receiver
from asynctasq_sqs._urls import QueueUrls
from asynctasq_sqs.dead_letters import DeadLetterQueues
from asynctasq_sqs.errors import MessageTooLargeError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

logger = logging.getLogger("asynctasq_sqs")

_CONCURRENCY = 8
"""Most batch requests one driver call keeps in flight."""


DEFAULT_REGION = "us-east-1"
"""The region when neither the settings nor botocore's lookup name one."""


class SQSDriver:
    """An AsyncTasQ driver on Amazon SQS standard queues.

    Every argument is a setting (``ASYNCTASQ_SQS_<NAME>`` in the environment). Nothing
    connects until first use.

    Args:
        region_name: AWS region, e.g. ``"eu-west-1"``; default: botocore's usual lookup
            (``AWS_DEFAULT_REGION``, the AWS config file), and ``us-east-1`` when it finds
            none.
        region: Alias of `region_name` (the ``ASYNCTASQ_SQS_REGION`` setting); give one.
        aws_access_key_id: Access key; default: botocore's credential chain.
        aws_secret_access_key: Secret key for `aws_access_key_id`.
        aws_session_token: Session token for temporary credentials.
        endpoint_url: SQS endpoint, for a local stand-in (moto, LocalStack, ElasticMQ).
        queue_url_prefix: When set (``https://sqs.<region>.amazonaws.com/<account>/``), a
            queue's URL is this prefix plus its SQS name, with no lookup; otherwise URLs are
            looked up once (GetQueueUrl) and cached.
        queue_name_prefix: Prepended to every queue name to form the SQS queue name
            (``prod-`` makes queue ``emails`` the SQS queue ``prod-emails``).
        create_queues: Create missing queues, each with a ``{name}-dead`` dead-letter queue
            and a redrive policy to it. Off by default: queues are infrastructure.
        visibility_timeout: Seconds every dequeue leases its messages for. Default (None):
            the lease each task asked for (`OutgoingMessage.visibility_timeout`).
        wait_time_seconds: Longest single long poll (SQS allows 0-20); `dequeue`'s `wait`
            is split into polls of at most this long.
        max_receive_count: For created queues: receives without an ack or retry after which
            SQS itself moves a message to the dead-letter queue (workers that keep dying).
        max_message_size: Message size limit in bytes (SQS: 262144 by default).
        max_pool_connections: HTTP connections kept to SQS (long polls hold one each).

    Raises:
        TypeError: both `region_name` and `region` were given.
        ValueError: a setting is out of range.
    """

    def __init__(
        self,
        *,
        region_name: str | None = None,
        region: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        endpoint_url: str | None = None,
        queue_url_prefix: str | None = None,
        queue_name_prefix: str = "",
        create_queues: bool = False,
        visibility_timeout: int | None = None,
        wait_time_seconds: int = 20,
        max_receive_count: int = 10,
        max_message_size: int = attr.SQS_MESSAGE_LIMIT,
        max_pool_connections: int = 50,
    ) -> None:
        if region_name is not None and region is not None:
            raise TypeError(
                "SQSDriver() got both region_name and region (the same setting): pass one"
            )
        _check_range("visibility_timeout", visibility_timeout, 1, attr.MAX_VISIBILITY)
        _check_range("wait_time_seconds", wait_time_seconds, 0, 20)
        _check_range("max_receive_count", max_receive_count, 1, 1000)
        _check_range("max_message_size", max_message_size, 1024, 1_048_576)
        _check_range("max_pool_connections", max_pool_connections, 1, 10_000)
        self.region_name = region_name if region_name is not None else region
        self.endpoint_url = endpoint_url
        self.create_queues = create_queues
        self.visibility_timeout = visibility_timeout
        self.wait_time_seconds = wait_time_seconds
        self.max_message_size = max_message_size
        self._credentials = {
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        self._max_pool_connections = max_pool_connections
        self._urls = QueueUrls(
            name_prefix=queue_name_prefix,
            url_prefix=queue_url_prefix,
            create=create_queues,
            max_receive_count=max_receive_count,
        )
        self._dead = DeadLetterQueues(
            self._urls, max_message_size=max_message_size, concurrency=_CONCURRENCY
        )
        self._receiver = Receiver(
            self._urls,
            visibility_timeout=visibility_timeout,
            wait_time_seconds=wait_time_seconds,
            max_message_size=max_message_size,
            concurrency=_CONCURRENCY,
            bury=self._bury_malformed,
        )
        self._client: SQSClient | None = None
        self._stack: AsyncExitStack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"SQSDriver(region_name={self.region_name!r}, endpoint_url={self.endpoint_url!r}, "
            f"queue_name_prefix={self._urls.name_prefix!r})"
        )

    def check_queue_name(self, queue: str) -> None:
        """Refuse a queue name SQS cannot hold with this prefix (`QueueNameRule`).

        Raises:
            ValueError: says what SQS names may hold.
        """
        self._urls.sqs_name(queue)

    # -- connection --------------------------------------------------------------------------
    def is_connected(self) -> bool:
        """Whether a client exists for the running event loop (no request is implied)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._client is not None
        return self._client is not None and self._loop is loop

    async def connect(self) -> None:
        """Create the SQS client for the running event loop (idempotent); no request yet.

        An aiobotocore client belongs to the loop that made it. A driver used from a new
        loop (a second ``asyncio.run`` with a driver made at import time) gets a new client;
        the old one is dropped without I/O, since its loop is usually closed by then.
        """
        if self.is_connected():
            return
        if self._client is not None:  # made on another event loop
            abandon_client(self._client, self._loop)
            self._client = self._stack = None
            self._connecting = asyncio.Lock()
            self._receiver.drain_buffer()  # their leases lapse; SQS hands them out again
        async with self._connecting:
            if self.is_connected():  # another task connected while this one waited
                return
            session = aioboto3.Session(region_name=self.region_name, **self._credentials)
            if session.region_name is None:  # nothing configured anywhere: SQS's first region
                session = aioboto3.Session(region_name=DEFAULT_REGION, **self._credentials)
            config = AioConfig(
                max_pool_connections=self._max_pool_connections,
                connect_timeout=10,
                read_timeout=self.wait_time_seconds + 40,  # a long poll is not a hang
                retries={"max_attempts": 5, "mode": "standard"},
            )
            stack = AsyncExitStack()
            client = await stack.enter_async_context(
                session.client("sqs", endpoint_url=self.endpoint_url, config=config)
            )
            self._stack, self._client = stack, client
            self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Give back messages received but not handed out, then close the client."""
        if self._client is None or self._stack is None:
            return
        client, stack = self._client, self._stack
        self._client = self._stack = None
        if self._loop is not asyncio.get_running_loop():
            self._receiver.drain_buffer()  # made on another loop: nothing to do I/O with
            abandon_client(client, self._loop)
            return
        try:
            held = self._receiver.drain_buffer()
            if held:
                with contextlib.suppress(Exception):
                    await self._resend_and_delete(client, held, keep_count=True)
        finally:
            await stack.aclose()

    async def _sqs(self) -> SQSClient:
        """The client of the running event loop, connecting first if needed."""
        client = self._client
        if client is None or self._loop is not asyncio.get_running_loop():
            await self.connect()
            client = self._client
            assert client is not None
        return client

    # -- enqueue -----------------------------------------------------------------------------
    def _outgoing(self, message: OutgoingMessage) -> attr.Envelope:
        if message.priority:
            raise ValueError(
                f"SQS cannot order messages by priority: task {message.task_id} has priority "
                f"{message.priority!r} for queue {message.queue!r}, and nothing was sent. Use "
                f"a queue per priority instead (e.g. .on_queue({message.queue + '-urgent'!r}) "
                "with workers of its own), or a driver that orders by priority (redis, "
                "postgres, mysql)"
            )
        body, encoding = attr.encode_body(message.payload)
        envelope = attr.envelope(
            task_id=message.task_id,
            body=body,
            encoding=encoding,
            attempts=0,
            visibility=max(
                attr.whole_seconds(message.visibility_timeout, upper=attr.MAX_VISIBILITY), 1
            ),
            delay=message.delay,
        )
        if envelope.size + attr.RETRY_HEADROOM > self.max_message_size:
            how = "base64-encoded, " if encoding == attr.BASE64 else ""
            raise MessageTooLargeError(
                f"task {message.task_id} for queue {message.queue!r} is "
                f"{envelope.size} bytes as an SQS message ({how}payload "
                f"{len(message.payload)} bytes), over the limit of {self.max_message_size} "
                f"bytes ({attr.RETRY_HEADROOM} of which are kept for retry bookkeeping); "
                "pass large data by reference (an S3 key, a database id) instead"
            )
        return envelope

    async def enqueue(self, message: OutgoingMessage) -> None:
        """Send one message (SendMessage).

        Raises:
            MessageTooLargeError: the message exceeds the SQS size limit.
            QueueNotFoundError: the queue does not exist and `create_queues` is off.
        """
        envelope = self._outgoing(message)
        client = await self._sqs()
        url = await self._urls.url(client, message.queue)
        await client.send_message(
            QueueUrl=url,
            MessageBody=envelope.body,
            MessageAttributes=envelope.attributes,
            DelaySeconds=envelope.delay_seconds,
        )

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send messages with SendMessageBatch, 10 per call, several calls at once.

        Every message is checked before any is sent. Failed entries are resent; entries
        that still fail raise `BatchEntryError` (the others were sent).

        Raises:
            MessageTooLargeError: a message exceeds the SQS size limit (nothing was sent).
            BatchEntryError: some messages could not be sent.
        """
        by_queue: dict[str, list[attr.Envelope]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(self._outgoing(message))
        if not by_queue:
            return
        client = await self._sqs()
        sends = []
        for queue, envelopes in by_queue.items():
            url = await self._urls.url(client, queue)
            sends.append(
                send_batches(
                    client,
                    url,
                    envelopes,
                    max_batch_bytes=self.max_message_size,
                    concurrency=_CONCURRENCY,
                )
            )
        await gather_bounded(sends, limit=_CONCURRENCY)

    # -- dequeue -----------------------------------------------------------------------------
    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        """Lease up to `limit` messages, earlier queues first, long-polling up to `wait` s.

        SQS long-polls in whole seconds: the whole seconds of `wait` are one long poll, a
        fraction left over is slept out before a last short poll. Several queues are first
        short-polled in order; when all are empty they are long-polled together, and
        messages beyond `limit` are kept for the next call (their lease keeps running).
        """
        if limit < 1 or not queues:
            return []
        return await self._receiver.dequeue(await self._sqs(), queues, limit=limit, wait=wait)

    # -- settling ----------------------------------------------------------------------------
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Delete finished messages (DeleteMessageBatch).

        A receipt whose lease was lost (it expired and the message went to another
        consumer) is logged: the message will run again.
        """
        client = await self._sqs()
        groups = _by_queue_url(deliveries)
        results = await gather_bounded(
            [
                delete_batches(
                    client,
                    url,
                    [_receipt(d).receipt_handle for d in group],
                    concurrency=_CONCURRENCY,
                )
                for url, group in groups.items()
            ],
            limit=_CONCURRENCY,
        )
        stale = sum(len(r) for r in results)
        if stale:
            logger.warning("ack: %d lease(s) were already lost; those tasks may run again", stale)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give messages back, ready now, without counting the delivery.

        SQS counts every receive, so the message is sent again with its count and then the
        received copy is deleted.
        """
        if deliveries:
            await self._resend_and_delete(await self._sqs(), list(deliveries), keep_count=True)

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        """Send the message again after `delay` (attempts + 1), then delete this copy.

        The new message is confirmed before the old one is deleted: a failure in between
        leaves a duplicate, never a loss. Nothing is raised once the new message is sent.
        """
        client = await self._sqs()
        receipt = _receipt(delivery)
        envelope = attr.envelope(
            task_id=delivery.task_id,
            body=receipt.body,
            encoding=receipt.encoding,
            attempts=delivery.attempts + 1,
            visibility=receipt.visibility,
            delay=delay,
        )
        await client.send_message(
            QueueUrl=receipt.queue_url,
            MessageBody=envelope.body,
            MessageAttributes=envelope.attributes,
            DelaySeconds=envelope.delay_seconds,
        )
        await self._delete_quietly(client, [delivery], "retry")

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """Send the message with its error to ``{queue}-dead``, then delete this copy.

        Raises:
            QueueNotFoundError: the dead-letter queue does not exist and `create_queues` is
                off (the message stays leased and comes back when the lease ends).
        """
        client = await self._sqs()
        await self._dead.add(client, delivery, _receipt(delivery), failure)
        await self._delete_quietly(client, [delivery], "dead-letter")

    async def _bury_malformed(self, delivery: Delivery, why: str) -> None:
        """Dead-letter a received message whose attributes cannot be read: it never runs. If
        that fails, the lease ends and it comes back; the queue's redrive policy
        (`max_receive_count`) has the last word."""
        failure = Failure(
            f"{MalformedMessageError.__module__}.{MalformedMessageError.__qualname__}",
            f"the SQS message attributes of this task cannot be read ({why})",
            "",
        )
        try:
            await self.dead_letter(delivery, failure)
        except Exception:
            logger.warning("could not dead-letter an unreadable message", exc_info=True)

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        """Push leases to `visibility_timeout` s from now (ChangeMessageVisibilityBatch).

        Leases no longer held are left alone. SQS refuses a lease past 12 hours from the
        receive: such a lease is extended to that limit instead, with a warning (SQS then
        hands the message out again, though it still runs).
        """
        seconds = max(attr.whole_seconds(visibility_timeout, upper=attr.MAX_VISIBILITY), 1)
        client = await self._sqs()
        now = time.monotonic()
        leases: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for delivery in deliveries:
            receipt = _receipt(delivery)
            left = attr.lease_left(receipt.received_at, now)
            if left < seconds:
                logger.warning(
                    "task %s has been leased for nearly 12 hours, the most SQS allows: it "
                    "will be handed out again in about %d s, though it still runs",
                    printable(clip(delivery.task_id, 200)),
                    max(left, 0),
                )
                if left < 1:
                    continue
            leases[receipt.queue_url].append((receipt.receipt_handle, min(seconds, left)))
        results = await gather_bounded(
            [
                change_visibility_batches(client, url, entries, concurrency=_CONCURRENCY)
                for url, entries in leases.items()
            ],
            limit=_CONCURRENCY,
        )
        for result in results:
            for failure in result:
                logger.debug("extend: lease not held: %s", failure.get("Message", ""))

    async def _delete_quietly(
        self, client: SQSClient, deliveries: Sequence[Delivery], why: str
    ) -> None:
        """Delete received copies after their replacement was sent; log, never raise."""
        for url, group in _by_queue_url(deliveries).items():
            try:
                stale = await delete_batches(
                    client,
                    url,
                    [_receipt(d).receipt_handle for d in group],
                    concurrency=_CONCURRENCY,
                )
            except Exception:
                logger.error(
                    "%s: sent the new message but could not delete the old one; the task "
                    "may run twice",
                    why,
                    exc_info=True,
                )
                continue
            if stale:
                logger.warning(
                    "%s: %d lease(s) were already lost; the task may run twice", why, len(stale)
                )

    async def _resend_and_delete(
        self, client: SQSClient, deliveries: Sequence[Delivery], *, keep_count: bool
    ) -> None:
        for url, group in _by_queue_url(deliveries).items():
            envelopes = [
                attr.envelope(
                    task_id=d.task_id,
                    body=_receipt(d).body,
                    encoding=_receipt(d).encoding,
                    attempts=d.attempts if keep_count else d.attempts + 1,
                    visibility=_receipt(d).visibility,
                    delay=0,
                )
                for d in group
            ]
            await send_batches(
                client,
                url,
                envelopes,
                max_batch_bytes=self.max_message_size,
                concurrency=_CONCURRENCY,
            )
            await self._delete_quietly(client, group, "release")

    # -- inspection --------------------------------------------------------------------------
    async def queue_names(self) -> list[str]:
        """Queues with an SQS queue under `queue_name_prefix` (ListQueues)."""
        return await queue_names(await self._sqs(), self._urls)

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """SQS's approximate counts per queue (zeros for a queue that does not exist)."""
        client = await self._sqs()
        return list(await asyncio.gather(*(queue_stats(client, self._urls, q) for q in queues)))

    async def purge(self, queue: str) -> int:
        """Empty a queue with SQS's PurgeQueue; returns the ready and delayed count before.

        SQS's purge also deletes messages leased right now (their acks become no-ops) and
        allows one purge per queue per minute; within that minute the driver deletes the
        ready messages one batch at a time instead.
        """
        return await purge_queue(await self._sqs(), self._urls, self._receiver, queue)

    # -- dead letters ------------------------------------------------------------------------
    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids (a scan)."""
        return await self._dead.read(await self._sqs(), queue=queue, task_ids=task_ids, limit=limit)

    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Send dead letters back to their queues (fresh count); returns how many moved."""
        return await self._dead.requeue(await self._sqs(), queue=queue, task_ids=task_ids)

    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Delete dead letters; with neither filter, all of them. Returns how many."""
        return await self._dead.purge(await self._sqs(), queue=queue, task_ids=task_ids)


def _receipt(delivery: Delivery) -> attr.SQSReceipt:
    receipt = delivery.receipt
    if not isinstance(receipt, attr.SQSReceipt):
        raise TypeError(f"delivery of task {delivery.task_id} was not made by an SQSDriver")
    return receipt


def _by_queue_url(deliveries: Sequence[Delivery]) -> dict[str, list[Delivery]]:
    groups: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        groups[_receipt(delivery).queue_url].append(delivery)
    return groups


def _check_range(name: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise ValueError(f"SQSDriver(): {name} must be between {low} and {high}, not {value}")


__all__ = ["SQSDriver"]
