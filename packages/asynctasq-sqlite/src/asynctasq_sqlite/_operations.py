"""The blocking side: one function per driver operation, run on the connection's thread.

Each function takes the connection first and does its whole job in one transaction, so a
driver call costs one hop to the thread. Times are Unix seconds (``time.time()``): the only
clock several processes on one host share.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Sequence
from typing import NamedTuple

from asynctasq.drivers.base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    MAX_PRIORITY,
    DeadLetter,
    Delivery,
    Failure,
    OutgoingMessage,
    QueueStats,
    failed_at_of,
)
from asynctasq_sqlite import sql
from asynctasq_sqlite._transaction import immediate, snapshot


class Receipt(NamedTuple):
    """The lease behind a `Delivery`: the row and the token of this delivery."""

    id: int
    lease: int


class Taken(NamedTuple):
    """What `take` found: the leased deliveries, or when none, when to look again."""

    deliveries: list[Delivery]
    next_due: float | None
    """Earliest ``available_at`` among the queues (None: all empty or raced away)."""


def enqueue(conn: sqlite3.Connection, messages: Sequence[OutgoingMessage]) -> None:
    """Insert messages in one transaction."""
    now = time.time()
    rows = [
        (
            m.task_id,
            m.queue,
            m.payload,
            m.visibility_timeout,
            0,
            now + max(m.delay, 0.0),
            now,
            m.priority,
        )
        for m in messages
    ]
    with immediate(conn):
        conn.executemany(sql.INSERT_MESSAGE, rows)


def take(conn: sqlite3.Connection, queues: Sequence[str], limit: int) -> Taken:
    """Lease up to `limit` ready messages, queues in the order given.

    Looks first without the write lock (an index seek per queue), so idle consumers polling
    an empty queue never contend with writers.

    Within a queue, priorities first: the levels present, highest first (one index seek
    each, one in all when nobody sets a priority), each level's ready rows oldest first; then
    the unchanged FIFO scan, which finds the rows of priority 0 (and any priority the levels
    do not cover, written behind the driver's back).

    A row the driver did not write (a column of another type or out of range, which the
    schema does not refuse) is dead-lettered in the same transaction, never handed out:
    handed out, it would fail in the worker before being settled, and be due again at once.
    """
    now = time.time()
    next_due: float | None = None
    unscheduled: list[str] = []
    for queue in queues:
        (due,) = conn.execute(sql.NEXT_DUE, (queue,)).fetchone()
        if due is None:
            continue
        if not isinstance(due, int | float):  # no row of the queue has a time: see sql
            unscheduled.append(queue)
        elif next_due is None or due < next_due:
            next_due = due
    if unscheduled:
        with immediate(conn):
            for queue in unscheduled:
                for row in conn.execute(sql.NOT_SCHEDULED, (queue, limit)).fetchall():
                    _bury(conn, queue, row, "available_at is not a time")
    if next_due is None or next_due > now:
        return Taken([], next_due)

    lease = random.getrandbits(62)
    deliveries: list[Delivery] = []
    leased = 0  # deliveries[:leased] have their lease written
    buried = False
    with immediate(conn):
        now = time.time()
        for queue in queues:
            below = MAX_PRIORITY + 1
            for _ in range(MAX_PRIORITY):  # at most one pass per level, whatever the rows say
                wanted = limit - len(deliveries)
                if wanted <= 0:
                    break
                found = conn.execute(sql.NEXT_LEVEL, (queue, below)).fetchone()
                if found is None:
                    break
                (level,) = found
                rows = conn.execute(sql.SELECT_READY_AT_LEVEL, (queue, level, now, wanted))
                buried |= _keep(conn, queue, rows.fetchall(), lease, deliveries)
                below = level
            if len(deliveries) > leased:  # leased now, so the FIFO scan passes over them
                conn.executemany(sql.LEASE, _leases(deliveries[leased:], lease, now))
                leased = len(deliveries)
            wanted = limit - len(deliveries)
            if wanted <= 0:
                break
            rows = conn.execute(sql.SELECT_READY, (queue, now, wanted))
            buried |= _keep(conn, queue, rows.fetchall(), lease, deliveries)
        if len(deliveries) > leased:
            conn.executemany(sql.LEASE, _leases(deliveries[leased:], lease, now))
    # Buried rows took places of the batch: the caller looks again at once, not after a pause.
    return Taken(deliveries, now if buried and not deliveries else None)


def _keep(
    conn: sqlite3.Connection, queue: str, rows: list[Row], lease: int, into: list[Delivery]
) -> bool:
    """Append the rows as deliveries of `lease` (not leased yet); bury those the driver
    cannot hand out. Whether any was buried."""
    buried = False
    for row in rows:
        row_id, raw_id, payload, attempts, vt = row
        try:
            task_id = raw_id.decode()
        except UnicodeDecodeError:
            task_id = None
        if task_id is None or attempts is None or vt is None:
            _bury(conn, queue, row, _why(task_id, attempts, vt))
            buried = True
            continue
        into.append(Delivery(task_id, queue, payload, attempts, Receipt(row_id, lease), vt))
    return buried


def _leases(deliveries: Sequence[Delivery], lease: int, now: float) -> list[tuple[int, float, int]]:
    return [(lease, now, d.receipt.id) for d in deliveries]


Row = tuple[int, bytes, bytes, int | None, float | None]
"""A message as `sql.SELECT_READY` reads it: id, task id and payload as bytes, attempts and
visibility timeout (None when not of their type)."""


def _why(task_id: str | None, attempts: int | None, vt: float | None) -> str:
    wrong = (
        (task_id is None, "task_id is not UTF-8 text"),
        (attempts is None, "attempts is not a count"),
        (vt is None, "visibility_timeout is not a positive number"),
    )
    return ", ".join(text for bad, text in wrong if bad)


def _bury(conn: sqlite3.Connection, queue: str, row: Row, why: str) -> None:
    """Move a row another writer made (see `take`) to the dead letters, with what can be
    read of it, so that a retry of the dead letter puts back a row the driver can hand out."""
    row_id, raw_id, payload, attempts, vt = row
    conn.execute(sql.DELETE_MESSAGE, (row_id,))
    conn.execute(
        sql.INSERT_DEAD_LETTER,
        (
            raw_id.decode(errors="replace"),
            queue,
            payload,
            DEFAULT_VISIBILITY_TIMEOUT if vt is None else vt,
            0 if attempts is None else attempts,
            "asynctasq.errors.MalformedMessageError",
            f"not a message row this driver wrote ({why}): something else wrote it",
            "",
            time.time(),
        ),
    )


def ack(conn: sqlite3.Connection, receipts: Sequence[Receipt]) -> None:
    """Delete the messages whose leases are still held."""
    with immediate(conn):
        conn.executemany(sql.ACK, receipts)


def release(conn: sqlite3.Connection, receipts: Sequence[Receipt]) -> None:
    """Make leased messages ready now and un-count their delivery."""
    now = time.time()
    with immediate(conn):
        conn.executemany(sql.RELEASE, [(now, r.id, r.lease) for r in receipts])


def retry(conn: sqlite3.Connection, receipt: Receipt, delay: float) -> None:
    """End the lease; the message is ready after `delay`, its delivery count kept."""
    with immediate(conn):
        conn.execute(sql.RETRY, (time.time() + max(delay, 0.0), receipt.id, receipt.lease))


def extend(conn: sqlite3.Connection, receipts: Sequence[Receipt], seconds: float) -> None:
    """Move the expiry of still-held leases to `seconds` from now."""
    until = time.time() + seconds
    with immediate(conn):
        conn.executemany(sql.EXTEND, [(until, r.id, r.lease) for r in receipts])


def dead_letter(conn: sqlite3.Connection, receipt: Receipt, failure: Failure) -> None:
    """Move a leased message to the dead letters, with the failure, in one transaction.

    The row is copied in SQL, as it is: nothing of it is read into Python, so no value in it
    can fail the move."""
    with immediate(conn):
        moved = conn.execute(
            sql.DEAD_LETTER,
            (
                failure.exception_type,
                failure.message,
                failure.traceback,
                time.time(),
                receipt.id,
                receipt.lease,
            ),
        ).rowcount
        if moved:  # else the lease expired and someone else holds the message now
            conn.execute(sql.DELETE_MESSAGE, (receipt.id,))


def purge(conn: sqlite3.Connection, queue: str) -> int:
    """Delete the ready and delayed messages of a queue; return how many."""
    with immediate(conn):
        return conn.execute(sql.PURGE, (queue, time.time())).rowcount


def queue_names(conn: sqlite3.Connection) -> list[str]:
    """Every queue with a live message or a dead letter, sorted.

    A name that is not UTF-8 (written behind the driver's back) shows with replacement
    characters rather than failing the listing."""
    return sorted(
        {bytes(name).decode(errors="replace") for (name,) in conn.execute(sql.QUEUE_NAMES)}
    )


def stats(conn: sqlite3.Connection, queues: Sequence[str]) -> list[QueueStats]:
    """Counts per queue, all read from one snapshot."""
    result = []
    with snapshot(conn):
        now = time.time()
        for queue in queues:
            ready, delayed, in_flight, dead = conn.execute(sql.STATS, (queue, now)).fetchone()
            result.append(QueueStats(queue, ready, delayed, in_flight, dead))
    return result


def _filter_params(queue: str | None, task_ids: Sequence[str] | None) -> dict[str, object]:
    return {
        "queue": queue,
        "task_ids": None if task_ids is None else json.dumps(list(task_ids)),
    }


def list_dead_letters(
    conn: sqlite3.Connection,
    queue: str | None,
    task_ids: Sequence[str] | None,
    limit: int,
) -> list[DeadLetter]:
    """Dead letters matching the filters, oldest first.

    Each row shows with what can be read of it (see `sql.DEAD_LETTER_COLUMNS`): text that is
    not UTF-8 with replacement characters, an attempts count that is not one as 0, a failure
    time that is not one as the epoch. One row written behind the driver's back never fails
    the listing."""
    where = sql.dead_letter_filter(queue=queue, task_ids=task_ids)
    params = _filter_params(queue, task_ids) | {"limit": limit}
    rows = conn.execute(
        f"SELECT {sql.DEAD_LETTER_COLUMNS} FROM asynctasq_dead_letters{where} "
        "ORDER BY id LIMIT :limit",
        params,
    )
    return [
        DeadLetter(
            task_id=_text(task_id),
            queue=_text(queue_name),
            payload=payload,
            failure=Failure(_text(exception_type), _text(message), _text(traceback)),
            attempts=0 if attempts is None else max(attempts, 0),
            failed_at=failed_at_of(failed_at),
        )
        for (
            task_id,
            queue_name,
            payload,
            attempts,
            exception_type,
            message,
            traceback,
            failed_at,
        ) in rows
    ]


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace")


def retry_dead_letters(
    conn: sqlite3.Connection, queue: str | None, task_ids: Sequence[str] | None
) -> int:
    """Move matching dead letters back to their queues, ready now, attempts reset.

    Copied in SQL, as they are: nothing of them is read into Python, so no value in them
    can fail the move (a row the driver cannot hand out is dead-lettered again at dequeue).
    """
    where = sql.dead_letter_filter(queue=queue, task_ids=task_ids)
    params = _filter_params(queue, task_ids) | {"now": time.time()}
    with immediate(conn):
        moved = conn.execute(sql.RETRY_DEAD_LETTERS.format(where=where), params).rowcount
        # Same filter in the same write transaction: exactly the rows just copied.
        conn.execute(f"DELETE FROM asynctasq_dead_letters{where}", params)
    return moved


def purge_dead_letters(
    conn: sqlite3.Connection, queue: str | None, task_ids: Sequence[str] | None
) -> int:
    """Delete matching dead letters; return how many."""
    where = sql.dead_letter_filter(queue=queue, task_ids=task_ids)
    with immediate(conn):
        return conn.execute(
            f"DELETE FROM asynctasq_dead_letters{where}", _filter_params(queue, task_ids)
        ).rowcount


def store_result(conn: sqlite3.Connection, task_id: str, result: bytes, ttl: float) -> None:
    """Keep a task's outcome for `ttl` seconds (replacing an earlier one); drop expired ones."""
    now = time.time()
    with immediate(conn):
        conn.execute(sql.DELETE_EXPIRED_RESULTS, (now,))
        conn.execute(sql.STORE_RESULT, (task_id, result, now + ttl))


def fetch_result(conn: sqlite3.Connection, task_id: str) -> bytes | None:
    """A task's kept outcome, if it is there and not expired."""
    row = conn.execute(sql.SELECT_RESULT, (task_id, time.time())).fetchone()
    return None if row is None else bytes(row[0])
