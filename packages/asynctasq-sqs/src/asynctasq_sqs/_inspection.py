"""Queue inspection and purging: names, SQS's approximate counts, PurgeQueue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from asynctasq.drivers.base import QueueStats
from asynctasq_sqs._receiver import Receiver
from asynctasq_sqs._urls import QueueUrls, error_code, is_missing_queue
from asynctasq_sqs.dead_letters import list_sqs_names

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

_PURGE_IN_PROGRESS = frozenset(
    {"AWS.SimpleQueueService.PurgeQueueInProgress", "PurgeQueueInProgress"}
)
_COUNTS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
]


async def queue_names(client: SQSClient, urls: QueueUrls) -> list[str]:
    """The queues that have an SQS queue (or dead-letter queue) under the name prefix."""
    names = await list_sqs_names(client, urls.name_prefix)
    return sorted({q for n in names if (q := urls.queue_of(n)) is not None})


async def queue_counts(
    client: SQSClient, urls: QueueUrls, queue: str, *, dead: bool = False
) -> dict[str, int]:
    """SQS's approximate counts for `queue` (or its dead-letter queue); {} if it is missing."""
    url = await urls.find(client, queue, dead=dead)
    if url is None:
        return {}
    try:
        reply = await client.get_queue_attributes(QueueUrl=url, AttributeNames=_COUNTS)  # type: ignore[arg-type]
    except ClientError as exc:
        if is_missing_queue(exc):
            urls.forget(url)
            return {}
        raise
    return {k: int(v) for k, v in reply.get("Attributes", {}).items()}


async def queue_stats(client: SQSClient, urls: QueueUrls, queue: str) -> QueueStats:
    """`QueueStats` from the counts of `queue` and of its dead-letter queue."""
    main = await queue_counts(client, urls, queue)
    dead = await queue_counts(client, urls, queue, dead=True)
    return QueueStats(
        queue=queue,
        ready=main.get("ApproximateNumberOfMessages", 0),
        delayed=main.get("ApproximateNumberOfMessagesDelayed", 0),
        in_flight=main.get("ApproximateNumberOfMessagesNotVisible", 0),
        dead=dead.get("ApproximateNumberOfMessages", 0)
        + dead.get("ApproximateNumberOfMessagesNotVisible", 0),
        extra={"approximate": True},
    )


async def purge_queue(client: SQSClient, urls: QueueUrls, receiver: Receiver, queue: str) -> int:
    """PurgeQueue `queue`; returns its ready and delayed count from just before.

    Within a minute of the last purge SQS refuses another; then the ready messages are
    received and deleted batch by batch (and counted exactly) instead.
    """
    url = await urls.find(client, queue)
    if url is None:
        return 0
    counts = await queue_counts(client, urls, queue)
    before = counts.get("ApproximateNumberOfMessages", 0) + counts.get(
        "ApproximateNumberOfMessagesDelayed", 0
    )
    try:
        await client.purge_queue(QueueUrl=url)
    except ClientError as exc:
        if error_code(exc) not in _PURGE_IN_PROGRESS:
            raise
        return await receiver.drain(client, queue, url)
    return before
