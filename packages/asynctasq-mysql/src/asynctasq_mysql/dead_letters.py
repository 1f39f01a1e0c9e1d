"""Dead letters: moving a failed message aside atomically, and listing, retrying, purging.

A dead letter keeps the task id, queue, payload, visibility timeout and delivery count of the
message, with the failure's exception type, message and traceback and when it happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asynctasq.drivers.base import DeadLetter, Failure
from asynctasq_mysql.pool import execute, fetchall, lock_retries, transaction
from asynctasq_mysql.server import is_transient_lock_error
from asynctasq_mysql.sql import Statements, placeholders, storable_text

_IDS_PER_STATEMENT = 1000


class _LeaseLost(Exception):
    """The row was copied but its lease changed before the delete: undo both."""


def _filters(queue: str | None, task_ids: Sequence[str] | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if queue is not None:
        clauses.append("`queue` = %s")
        params.append(queue)
    if task_ids is not None:
        clauses.append(f"`task_id` IN {placeholders(len(task_ids))}")
        params.extend(task_ids)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def move_to_dead_letters(
    pool: Any, sql: Statements, row_id: int, token: int, failure: Failure
) -> bool:
    """In one transaction, copy the leased row with `failure` aside and delete it.

    ``INSERT ... SELECT`` and ``DELETE`` both match the lease token; if either finds the
    lease gone (expired and taken by another consumer), both are rolled back.

    Returns:
        False when the lease was no longer held (nothing changed).
    """
    params = (
        storable_text(failure.exception_type),
        storable_text(failure.message),
        storable_text(failure.traceback),
        row_id,
        token,
    )
    retries = lock_retries()
    for attempt in retries:
        try:
            async with transaction(pool) as cursor:
                if not await cursor.execute(sql.dead_letter_copy, params):
                    return False
                if await cursor.execute(sql.dead_letter_delete, (row_id, token)) != 1:
                    raise _LeaseLost
            return True
        except _LeaseLost:
            return False
        except Exception as exc:
            if attempt + 1 == len(retries) or not is_transient_lock_error(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def list_dead_letters(
    pool: Any, sql: Statements, queue: str | None, task_ids: Sequence[str] | None, limit: int
) -> list[DeadLetter]:
    """Dead letters, oldest first; an empty `task_ids` matches nothing."""
    if task_ids is not None and not task_ids:
        return []
    where, params = _filters(queue, task_ids)
    rows = await fetchall(
        pool, f"{sql.dead_select}{where} ORDER BY `id` LIMIT %s", [*params, max(limit, 0)]
    )
    return [
        DeadLetter(
            task_id=row[1],
            queue=row[2],
            payload=bytes(row[3]),
            failure=Failure(exception_type=row[4], message=row[5], traceback=row[6]),
            attempts=int(row[7]),
            failed_at=row[8],  # naive UTC; a zero or invalid date (a str) reads as unknown
        )
        for row in rows
    ]


async def retry_dead_letters(
    pool: Any, sql: Statements, queue: str | None, task_ids: Sequence[str] | None
) -> int:
    """Move matching dead letters back to their queues, ready now, attempts reset to 0.

    The rows are locked first and then copied and deleted by id in the same transaction, so
    a dead letter added meanwhile is neither lost nor duplicated.

    Returns:
        How many moved.
    """
    if task_ids is not None and not task_ids:
        return 0
    where, params = _filters(queue, task_ids)
    async with transaction(pool) as cursor:
        await cursor.execute(f"{sql.dead_ids_for_update}{where} ORDER BY `id` FOR UPDATE", params)
        ids = [row[0] for row in await cursor.fetchall()]
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start : start + _IDS_PER_STATEMENT]
            in_list = placeholders(len(chunk))
            await cursor.execute(sql.dead_requeue_prefix + in_list, chunk)
            await cursor.execute(sql.dead_delete_prefix + in_list, chunk)
    return len(ids)


async def purge_dead_letters(
    pool: Any, sql: Statements, queue: str | None, task_ids: Sequence[str] | None
) -> int:
    """Delete matching dead letters (all with neither filter). Returns how many."""
    if task_ids is not None and not task_ids:
        return 0
    where, params = _filters(queue, task_ids)
    return await execute(pool, f"DELETE FROM {sql.tables.dead_letter}{where}", params)


__all__ = [
    "list_dead_letters",
    "move_to_dead_letters",
    "purge_dead_letters",
    "retry_dead_letters",
]
