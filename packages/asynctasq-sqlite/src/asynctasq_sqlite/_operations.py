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
from datetime import UTC, datetime
from typing import NamedTuple

from asynctasq.drivers.base import DeadLetter, Delivery, Failure, OutgoingMessage, QueueStats
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
        )
        for m in messages
    ]
    with immediate(conn):
        conn.executemany(sql.INSERT_MESSAGE, rows)


def take(conn: sqlite3.Connection, queues: Sequence[str], limit: int) -> Taken:
    """Lease up to `limit` ready messages, queues in the order given.

    Looks first without the write lock (an index seek per queue), so idle consumers polling
    an empty queue never contend with writers.
    """
    now = time.time()
    next_due: float | None = None
    for queue in queues:
        (due,) = conn.execute(sql.NEXT_DUE, (queue,)).fetchone()
        if due is not None and (next_due is None or due < next_due):
            next_due = due
    if next_due is None or next_due > now:
        return Taken([], next_due)

    lease = random.getrandbits(62)
    deliveries: list[Delivery] = []
    with immediate(conn):
        now = time.time()
        for queue in queues:
            wanted = limit - len(deliveries)
            if wanted <= 0:
                break
            for row_id, task_id, queue_name, payload, attempts, vt in conn.execute(
                sql.SELECT_READY, (queue, now, wanted)
            ):
                deliveries.append(
                    Delivery(task_id, queue_name, payload, attempts, Receipt(row_id, lease), vt)
                )
        if deliveries:
            conn.executemany(sql.LEASE, [(lease, now, d.receipt.id) for d in deliveries])
    return Taken(deliveries, None)


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
    """Move a leased message to the dead letters, with the failure, in one transaction."""
    with immediate(conn):
        row = conn.execute(sql.LEASED_ROW, receipt).fetchone()
        if row is None:
            return  # the lease expired and someone else holds the message now
        task_id, queue, payload, vt, attempts = row
        conn.execute(sql.DELETE_MESSAGE, (receipt.id,))
        conn.execute(
            sql.INSERT_DEAD_LETTER,
            (
                task_id,
                queue,
                payload,
                vt,
                attempts,
                failure.exception_type,
                failure.message,
                failure.traceback,
                time.time(),
            ),
        )


def purge(conn: sqlite3.Connection, queue: str) -> int:
    """Delete the ready and delayed messages of a queue; return how many."""
    with immediate(conn):
        return conn.execute(sql.PURGE, (queue, time.time())).rowcount


def queue_names(conn: sqlite3.Connection) -> list[str]:
    """Every queue with a live message or a dead letter, sorted."""
    return [name for (name,) in conn.execute(sql.QUEUE_NAMES)]


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
    """Dead letters matching the filters, oldest first."""
    where = sql.dead_letter_filter(queue=queue, task_ids=task_ids)
    params = _filter_params(queue, task_ids) | {"limit": limit}
    rows = conn.execute(
        f"SELECT {sql.DEAD_LETTER_COLUMNS} FROM asynctasq_dead_letters{where} "
        "ORDER BY id LIMIT :limit",
        params,
    )
    return [
        DeadLetter(
            task_id=task_id,
            queue=queue_name,
            payload=payload,
            failure=Failure(exception_type, message, traceback),
            attempts=attempts,
            failed_at=datetime.fromtimestamp(failed_at, UTC),
        )
        for (
            _id,
            task_id,
            queue_name,
            payload,
            _vt,
            attempts,
            exception_type,
            message,
            traceback,
            failed_at,
        ) in rows
    ]


def retry_dead_letters(
    conn: sqlite3.Connection, queue: str | None, task_ids: Sequence[str] | None
) -> int:
    """Move matching dead letters back to their queues, ready now, attempts reset."""
    where = sql.dead_letter_filter(queue=queue, task_ids=task_ids)
    with immediate(conn):
        now = time.time()
        params = _filter_params(queue, task_ids)
        moved = conn.execute(
            "SELECT id, task_id, queue, payload, visibility_timeout "
            f"FROM asynctasq_dead_letters{where} ORDER BY id",
            params,
        ).fetchall()
        # Same filter in the same write transaction: exactly the rows just read.
        conn.execute(f"DELETE FROM asynctasq_dead_letters{where}", params)
        conn.executemany(
            sql.INSERT_MESSAGE,
            [(task_id, q, payload, vt, 0, now, now) for _id, task_id, q, payload, vt in moved],
        )
    return len(moved)


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
