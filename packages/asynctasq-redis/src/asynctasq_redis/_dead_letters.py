"""Dead-letter inspection: list, retry and purge, one script call per queue (and batch).

Dead letters live per queue (``{prefix:queue}:dead`` plus a hash each), so on a cluster
each queue is its own slot; without a `queue` filter the driver passes every known queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from asynctasq.drivers.base import UNKNOWN_FAILED_AT, DeadLetter, Failure, failed_at_of
from asynctasq_redis._keys import KeyCache
from asynctasq_redis.scripts import SCRIPTS

_LIST = SCRIPTS["LIST_DEAD"]
_RETRY = SCRIPTS["RETRY_DEAD"]
_PURGE = SCRIPTS["PURGE_DEAD"]

_IDS_PER_CALL = 1000


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _chunks(task_ids: Sequence[str]) -> list[Sequence[str]]:
    return [task_ids[i : i + _IDS_PER_CALL] for i in range(0, len(task_ids), _IDS_PER_CALL)]


async def list_(
    client: Redis | RedisCluster,
    keys: KeyCache,
    queues: Sequence[str],
    task_ids: Sequence[str] | None,
    limit: int,
) -> list[DeadLetter]:
    """Dead letters of `queues` (only `task_ids` if given), oldest first, at most `limit`."""
    if limit <= 0 or (task_ids is not None and not task_ids):
        return []
    calls = [
        (queue, _LIST(client, (keys[queue].tag,), (limit, *ids)))
        for queue in queues
        for ids in (_chunks(task_ids) if task_ids is not None else [()])
    ]
    replies = await asyncio.gather(*(call for _, call in calls))
    found: list[DeadLetter] = []
    for (queue, _), reply in zip(calls, replies, strict=True):
        found += _parse(queue, reply)
    found.sort(key=lambda d: (d.failed_at, d.task_id))
    return found[:limit]


def _failed_at(raw: bytes) -> datetime:
    """The failure time of a dead letter (`failed_at_of`)."""
    try:
        stamp = int(raw or 0)
        # microseconds; dead letters stored by 0.x releases have milliseconds (13 digits)
        seconds = stamp / (1e6 if stamp >= 10**14 else 1e3)
    except (ValueError, OverflowError):  # not digits, or too many for a float
        return UNKNOWN_FAILED_AT
    return failed_at_of(seconds)


def _attempts(raw: bytes) -> int:
    """The delivery count of a dead letter; 0 when the field is not a count."""
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def _parse(queue: str, reply: list[Any]) -> list[DeadLetter]:
    # Each field read on its own terms: a hash written behind the driver's back (anyone who
    # can write to Redis can) shows with what can be read of it, never failing the listing.
    out = []
    for i in range(0, len(reply), 7):
        task_id, payload, attempts, exc_type, message, traceback, failed = reply[i : i + 7]
        out.append(
            DeadLetter(
                task_id=_text(task_id),
                queue=queue,
                payload=payload,
                failure=Failure(_text(exc_type), _text(message), _text(traceback)),
                attempts=_attempts(attempts),
                failed_at=_failed_at(failed),
            )
        )
    return out


async def _apply(
    script: Any,
    client: Redis | RedisCluster,
    keys: KeyCache,
    queues: Sequence[str],
    task_ids: Sequence[str] | None,
    batch: int,
) -> int:
    if task_ids is not None and not task_ids:
        return 0
    total = 0
    for queue in queues:
        tag = (keys[queue].tag,)
        if task_ids is not None:
            for ids in _chunks(task_ids):
                total += await script(client, tag, (batch, *ids))
            continue
        while True:  # everything, a batch per call so no call holds the server long
            moved = await script(client, tag, (batch,))
            total += moved
            if moved < batch:
                break
    return int(total)


async def retry(
    client: Redis | RedisCluster,
    keys: KeyCache,
    queues: Sequence[str],
    task_ids: Sequence[str] | None,
    batch: int,
) -> int:
    """Move dead letters back to ready with a fresh attempt count; returns how many."""
    return await _apply(_RETRY, client, keys, queues, task_ids, batch)


async def purge(
    client: Redis | RedisCluster,
    keys: KeyCache,
    queues: Sequence[str],
    task_ids: Sequence[str] | None,
    batch: int,
) -> int:
    """Delete dead letters; returns how many."""
    return await _apply(_PURGE, client, keys, queues, task_ids, batch)
