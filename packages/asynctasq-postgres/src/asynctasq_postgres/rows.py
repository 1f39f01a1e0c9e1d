"""Conversions between the driver's Python values and its statements' rows and arrays."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import asyncpg

from asynctasq.drivers.base import Delivery, OutgoingMessage, StatusWrite
from asynctasq_postgres.sql import (
    DQ_ATTEMPTS,
    DQ_AVAILABLE,
    DQ_ID,
    DQ_ORD,
    DQ_PAYLOAD,
    DQ_QUEUE,
    DQ_RANK,
    DQ_SEQ,
    DQ_TASK_ID,
    DQ_VT,
    Statements,
)

_dequeue_order = itemgetter(DQ_ORD, DQ_RANK, DQ_AVAILABLE, DQ_ID)


def enqueue_args(message: OutgoingMessage) -> tuple[Any, ...]:
    """Parameters of the single-message enqueue statement."""
    return (
        message.task_id,
        message.queue,
        message.payload,
        max(float(message.delay), 0.0),
        float(message.visibility_timeout),
    )


def enqueue_many_args(messages: Sequence[OutgoingMessage]) -> tuple[list[Any], ...]:
    """Column arrays for the batch enqueue statement (one ``unnest``)."""
    return (
        [m.task_id for m in messages],
        [m.queue for m in messages],
        [m.payload for m in messages],
        [max(float(m.delay), 0.0) for m in messages],
        [float(m.visibility_timeout) for m in messages],
    )


def insert(sql: Statements, messages: Sequence[OutgoingMessage]) -> tuple[str, tuple[Any, ...]]:
    """The statement storing `messages` (one, or a batch) and its parameters: the ranked
    variants only when a message has a priority (see `Statements.build`)."""
    if len(messages) == 1:
        message = messages[0]
        if message.priority:
            return sql.enqueue_ranked, (*enqueue_args(message), message.priority)
        return sql.enqueue, enqueue_args(message)
    arrays = enqueue_many_args(messages)
    if any(m.priority for m in messages):
        return sql.enqueue_many_ranked, (*arrays, [m.priority for m in messages])
    return sql.enqueue_many, arrays


def deliveries_from(rows: list[asyncpg.Record]) -> list[Delivery]:
    """Deliveries from dequeue rows, sorting `rows` in place into queue, then priority, then
    FIFO order."""
    if len(rows) > 1:
        rows.sort(key=_dequeue_order)  # RETURNING order is unspecified: restore FIFO
    return [
        Delivery(
            task_id=str(row[DQ_TASK_ID]),
            queue=row[DQ_QUEUE],
            payload=row[DQ_PAYLOAD],
            attempts=row[DQ_ATTEMPTS] - 1,
            receipt=(row[DQ_ID], row[DQ_SEQ]),
            visibility_timeout=row[DQ_VT],
        )
        for row in rows
    ]


def receipt_arrays(deliveries: Sequence[Delivery]) -> tuple[list[int], list[int]]:
    """Row ids and lease numbers of `deliveries`, as two parallel arrays."""
    ids: list[int] = []
    seqs: list[int] = []
    for delivery in deliveries:
        row_id, seq = delivery.receipt
        ids.append(row_id)
        seqs.append(seq)
    return ids, seqs


def status_arrays(writes: Sequence[StatusWrite]) -> tuple[list[Any], ...]:
    """Column arrays for the status upsert, one row per task id: the last write of an id
    wins, placed where it was given (an upsert cannot touch one row twice)."""
    latest: dict[str, StatusWrite] = {}
    for write in writes:
        latest.pop(write.task_id, None)  # re-inserted below: it moves to its later place
        latest[write.task_id] = write
    kept = latest.values()
    return (
        [w.task_id for w in kept],
        [w.queue for w in kept],
        [w.state for w in kept],
        [w.record for w in kept],
        [float(w.ttl) for w in kept],
    )


def log_cursor(cursor: str | None) -> int:
    """The last log id a cursor names (0: before the first).

    Raises:
        ValueError: `cursor` is not a cursor of this driver.
    """
    if cursor is None:
        return 0
    try:
        return int(cursor)
    except (TypeError, ValueError):
        raise ValueError(f"{cursor!r} is not a PostgreSQL log cursor") from None


def uuid_filter(task_ids: Sequence[str] | None) -> list[uuid.UUID] | None:
    """Task ids as UUIDs; ids that are not UUIDs cannot be stored, so they match nothing."""
    if task_ids is None:
        return None
    if isinstance(task_ids, str):
        task_ids = [task_ids]
    parsed: list[uuid.UUID] = []
    for task_id in task_ids:
        try:
            parsed.append(uuid.UUID(str(task_id)))
        except ValueError:
            continue
    return parsed


__all__ = [
    "deliveries_from",
    "enqueue_args",
    "enqueue_many_args",
    "log_cursor",
    "receipt_arrays",
    "status_arrays",
    "uuid_filter",
]
