"""Queue names to SQS queue URLs: by prefix, by lookup (cached), or by creating the queue.

An AsyncTasQ queue ``emails`` is the SQS queue ``{queue_name_prefix}emails``; its dead
letters live in ``{queue_name_prefix}emails-dead``. Queues the driver creates get that
dead-letter queue as their redrive target, so a message SQS itself gives up on (received
`max_receive_count` times without being settled: workers that crash on it) is kept too.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from asynctasq_sqs.errors import QueueNotFoundError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.literals import QueueAttributeNameType

DEAD_SUFFIX = "-dead"
"""Appended to a queue's name to name its dead-letter queue."""
DEAD_LETTER_RETENTION = 1_209_600
"""Seconds a created dead-letter queue keeps messages (14 days, the SQS maximum)."""

_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_EXISTS = frozenset({"QueueAlreadyExists", "QueueNameExists"})
_VALID_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")


def error_code(exc: ClientError) -> str:
    """The error code of a botocore client error ('' when missing)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_missing_queue(exc: ClientError) -> bool:
    """Whether `exc` says the queue does not exist."""
    return error_code(exc) in _NO_QUEUE


class QueueUrls:
    """Resolves and caches queue URLs for one driver.

    Args:
        name_prefix: Prepended to every queue name to form the SQS queue name.
        url_prefix: When set, a queue's URL is ``url_prefix + sqs_name`` without asking SQS.
        create: Create missing queues (with dead-letter queue and redrive policy).
        max_receive_count: The redrive policy's receive count for created queues.
    """

    def __init__(
        self, *, name_prefix: str, url_prefix: str | None, create: bool, max_receive_count: int
    ) -> None:
        if url_prefix is not None and not url_prefix.endswith("/"):
            url_prefix += "/"
        self.name_prefix = name_prefix
        self.url_prefix = url_prefix
        self.create = create
        self.max_receive_count = max_receive_count
        self._urls: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def sqs_name(self, queue: str) -> str:
        """The SQS queue name of `queue`.

        Raises:
            ValueError: the name is not one SQS accepts, or is reserved for dead letters.
        """
        if queue.endswith(DEAD_SUFFIX):
            raise ValueError(
                f"queue name {queue!r} ends in {DEAD_SUFFIX!r}, which the SQS driver keeps "
                "for dead-letter queues; choose another name"
            )
        name = self.name_prefix + queue
        if not _VALID_NAME.fullmatch(name + DEAD_SUFFIX):
            raise ValueError(
                f"queue name {queue!r} gives SQS queue names {name!r}/{name + DEAD_SUFFIX!r}: "
                "SQS allows 1-80 characters of A-Z, a-z, 0-9, '-' and '_'"
            )
        return name

    def queue_of(self, sqs_name: str) -> str | None:
        """The AsyncTasQ queue an SQS queue name belongs to (dead-letter queues included)."""
        if not sqs_name.startswith(self.name_prefix) or sqs_name.endswith(".fifo"):
            return None
        name = sqs_name[len(self.name_prefix) :]
        if name.endswith(DEAD_SUFFIX):
            name = name[: -len(DEAD_SUFFIX)]
        return name or None

    async def url(self, client: SQSClient, queue: str) -> str:
        """The URL of `queue`, creating it when allowed.

        Raises:
            QueueNotFoundError: it does not exist and `create` is off.
        """
        return await self._resolve(client, self.sqs_name(queue), dead=False)

    async def dead_url(self, client: SQSClient, queue: str) -> str:
        """The URL of `queue`'s dead-letter queue, creating it when allowed.

        Raises:
            QueueNotFoundError: it does not exist and `create` is off.
        """
        return await self._resolve(client, self.sqs_name(queue) + DEAD_SUFFIX, dead=True)

    async def find(self, client: SQSClient, queue: str, *, dead: bool = False) -> str | None:
        """The URL of `queue` (or its dead-letter queue) if it exists; never creates."""
        name = self.sqs_name(queue) + (DEAD_SUFFIX if dead else "")
        if name in self._urls:
            return self._urls[name]
        try:
            return await self._lookup(client, name)
        except QueueNotFoundError:
            return None

    def forget(self, queue_url: str) -> None:
        """Drop a cached URL (its queue was deleted behind our back)."""
        for name, url in list(self._urls.items()):
            if url == queue_url:
                del self._urls[name]

    async def _resolve(self, client: SQSClient, name: str, *, dead: bool) -> str:
        url = self._urls.get(name)
        if url is not None:
            return url
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            url = self._urls.get(name)
            if url is not None:
                return url
            if self.url_prefix is not None and not self.create:
                url = self.url_prefix + name
            else:
                try:
                    url = await self._lookup(client, name)
                except QueueNotFoundError:
                    if not self.create:
                        raise
                    url = await self._create(client, name, dead=dead)
            self._urls[name] = url
            return url

    async def _lookup(self, client: SQSClient, name: str) -> str:
        try:
            url = (await client.get_queue_url(QueueName=name))["QueueUrl"]
        except ClientError as exc:
            if not is_missing_queue(exc):
                raise
            hint = (
                "create it, or pass create_queues=True to let the driver create it"
                if not self.create
                else "it could not be created"
            )
            raise QueueNotFoundError(f"SQS queue {name!r} does not exist: {hint}") from None
        self._urls[name] = url
        return url

    async def _create(self, client: SQSClient, name: str, *, dead: bool) -> str:
        attributes: dict[QueueAttributeNameType, str]
        if dead:
            attributes = {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION)}
        else:
            dead_url = await self._resolve(client, name + DEAD_SUFFIX, dead=True)
            arn_reply = await client.get_queue_attributes(
                QueueUrl=dead_url, AttributeNames=["QueueArn"]
            )
            policy = {
                "deadLetterTargetArn": arn_reply["Attributes"]["QueueArn"],
                "maxReceiveCount": str(self.max_receive_count),
            }
            attributes = {"RedrivePolicy": json.dumps(policy)}
        try:
            return (await client.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) not in _EXISTS:
                raise
            # Someone created it first with other attributes: use theirs.
            return (await client.get_queue_url(QueueName=name))["QueueUrl"]
