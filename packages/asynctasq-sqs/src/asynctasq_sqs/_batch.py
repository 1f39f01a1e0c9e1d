"""SQS batch calls: chunking by count and bytes, retrying failed entries, never dropping them.

A batch response lists per-entry failures next to successes. An entry that failed through
no fault of the request (``SenderFault`` false: throttling, a server error) is sent again,
with a short backoff; a sender fault will fail again, so it is raised at once. Callers may
name failure codes to accept instead (a stale receipt handle, for example).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from asynctasq_sqs._attributes import MAX_BATCH, Envelope
from asynctasq_sqs.errors import BatchEntryError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

T = TypeVar("T")

ATTEMPTS = 4
"""Calls per batch before failed entries are raised."""
BACKOFF = 0.05
"""Seconds before the first resend of failed entries; doubles each time."""


def chunks(items: Sequence[T], *, size_of: Callable[[T], int], max_bytes: int) -> Iterator[list[T]]:
    """Split `items` into runs of at most `MAX_BATCH` whose sizes add up to `max_bytes`."""
    chunk: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if chunk and (len(chunk) == MAX_BATCH or total + size > max_bytes):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += size
    if chunk:
        yield chunk


async def run_batch(
    operation: str,
    call: Callable[[list[Any]], Awaitable[Mapping[str, Any]]],
    entries: Sequence[Mapping[str, Any]],
    *,
    accept: Iterable[str] = (),
) -> list[Mapping[str, Any]]:
    """Call `call(entries)` until every entry succeeded or failed with an accepted code.

    Args:
        operation: The SQS action's name, for errors.
        call: Sends one batch request with the given entries and returns the response.
        entries: Batch entries, each with a unique ``Id``.
        accept: Failure codes that count as done (returned, not raised).

    Returns:
        The accepted failures.

    Raises:
        BatchEntryError: an entry failed through the sender's fault, or kept failing.
    """
    accepted_codes = frozenset(accept)
    accepted: list[Mapping[str, Any]] = []
    pending = list(entries)
    for attempt in range(ATTEMPTS):
        response = await call(pending)
        failed: Sequence[Mapping[str, Any]] = response.get("Failed") or []
        if not failed:
            return accepted
        by_id = {entry["Id"]: entry for entry in pending}
        retry: list[Mapping[str, Any]] = []
        refused: list[Mapping[str, Any]] = []
        for failure in failed:
            if failure.get("Code") in accepted_codes:
                accepted.append(failure)
            elif failure.get("SenderFault") or failure.get("Id") not in by_id:
                refused.append(failure)
            else:
                retry.append(by_id[failure["Id"]])
        if refused:
            raise BatchEntryError(operation, refused)
        if not retry:
            return accepted
        if attempt == ATTEMPTS - 1:
            raise BatchEntryError(operation, [f for f in failed if f not in accepted])
        pending = retry
        await asyncio.sleep(BACKOFF * 2**attempt)
    return accepted  # pragma: no cover - the loop returns or raises


async def gather_bounded(calls: Sequence[Awaitable[T]], *, limit: int) -> list[T]:
    """Await `calls` with at most `limit` running at once; raise the first error after all end.

    Every call runs to completion even when one fails, so no request is left orphaned.
    """
    if len(calls) == 1:
        return [await calls[0]]
    gate = asyncio.Semaphore(limit)

    async def bounded(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    results = await asyncio.gather(*(bounded(c) for c in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]  # no exceptions left


# -- the three SQS batch actions -------------------------------------------------------------
STALE_RECEIPT_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"}
)
"""Failure codes for a receipt whose lease is gone (settled, expired or re-leased elsewhere)."""


async def send_batches(
    client: SQSClient,
    queue_url: str,
    envelopes: Sequence[Envelope],
    *,
    max_batch_bytes: int,
    concurrency: int,
) -> None:
    """Send `envelopes` with SendMessageBatch, 10 (and at most `max_batch_bytes`) per call.

    Raises:
        BatchEntryError: some entries could not be sent (others may have been).
    """

    batches = list(chunks(envelopes, size_of=lambda e: e.size, max_bytes=max_batch_bytes))
    await gather_bounded(
        [send_chunk(client, queue_url, chunk) for chunk in batches], limit=concurrency
    )


async def send_chunk(client: SQSClient, queue_url: str, chunk: Sequence[Envelope]) -> None:
    """Send up to 10 envelopes in one SendMessageBatch call (resending failed entries).

    Raises:
        BatchEntryError: some entries could not be sent.
    """
    entries: list[SendMessageBatchRequestEntryTypeDef] = [
        {
            "Id": str(i),
            "MessageBody": e.body,
            "MessageAttributes": e.attributes,
            "DelaySeconds": e.delay_seconds,
        }
        for i, e in enumerate(chunk)
    ]

    async def call(batch: list[Any]) -> Mapping[str, Any]:
        return await client.send_message_batch(QueueUrl=queue_url, Entries=batch)

    await run_batch("SendMessageBatch", call, entries)


async def delete_batches(
    client: SQSClient, queue_url: str, receipt_handles: Sequence[str], *, concurrency: int
) -> list[Mapping[str, Any]]:
    """Delete messages with DeleteMessageBatch; returns the stale-receipt failures.

    A failure's ``Id`` is the index of its receipt handle in `receipt_handles`.

    Raises:
        BatchEntryError: some deletions failed for another reason.
    """

    async def delete(start: int, chunk: Sequence[str]) -> list[Mapping[str, Any]]:
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk, start)
        ]

        async def call(batch: list[Any]) -> Mapping[str, Any]:
            return await client.delete_message_batch(QueueUrl=queue_url, Entries=batch)

        return await run_batch("DeleteMessageBatch", call, entries, accept=STALE_RECEIPT_CODES)

    calls = [
        delete(i, receipt_handles[i : i + MAX_BATCH])
        for i in range(0, len(receipt_handles), MAX_BATCH)
    ]
    results = await gather_bounded(calls, limit=concurrency)
    return [failure for result in results for failure in result]


async def change_visibility_batches(
    client: SQSClient,
    queue_url: str,
    leases: Sequence[tuple[str, int]],
    *,
    concurrency: int,
) -> list[Mapping[str, Any]]:
    """Set each (receipt handle, seconds) lease with ChangeMessageVisibilityBatch.

    Returns:
        The stale-receipt failures (leases no longer held), which are left alone; a
        failure's ``Id`` is the index of its lease in `leases`.

    Raises:
        BatchEntryError: some changes failed for another reason.
    """

    async def change(start: int, chunk: Sequence[tuple[str, int]]) -> list[Mapping[str, Any]]:
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
            for i, (handle, seconds) in enumerate(chunk, start)
        ]

        async def call(batch: list[Any]) -> Mapping[str, Any]:
            return await client.change_message_visibility_batch(QueueUrl=queue_url, Entries=batch)

        return await run_batch(
            "ChangeMessageVisibilityBatch", call, entries, accept=STALE_RECEIPT_CODES
        )

    calls = [change(i, leases[i : i + MAX_BATCH]) for i in range(0, len(leases), MAX_BATCH)]
    results = await gather_bounded(calls, limit=concurrency)
    return [failure for result in results for failure in result]
