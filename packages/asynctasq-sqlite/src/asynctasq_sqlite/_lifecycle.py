"""The blocking side of the lifecycle capabilities (statuses, logs, workers).

Like `asynctasq_sqlite._operations`: each function runs on the connection's thread and does
its job in one transaction. Expired rows are filtered out of every read and deleted, a
bounded batch at a time, by the writes to the same table (no sweeper to run).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from asynctasq.drivers.base import StatusWrite
from asynctasq.drivers.sql.polled_logs import ANY_SIZE
from asynctasq_sqlite import sql
from asynctasq_sqlite._transaction import immediate


def write_statuses(conn: sqlite3.Connection, writes: Sequence[StatusWrite]) -> None:
    """Store the records in one transaction; of two writes for one id the later wins and
    takes the later position."""
    latest: dict[str, StatusWrite] = {}
    for write in writes:
        # Re-inserted at the end, so the id's position is that of its last write.
        latest.pop(write.task_id, None)
        latest[write.task_id] = write
    now = time.time()
    rows = [(w.task_id, w.queue, w.state, bytes(w.record), now + w.ttl) for w in latest.values()]
    with immediate(conn):
        conn.execute(sql.TRIM_STATUSES, (now,))
        conn.executemany(sql.WRITE_STATUS, rows)


def read_status(conn: sqlite3.Connection, task_id: str) -> bytes | None:
    """The live record of `task_id`, if any."""
    row = conn.execute(sql.SELECT_STATUS, (task_id, time.time())).fetchone()
    return None if row is None else bytes(row[0])


def list_statuses(
    conn: sqlite3.Connection, queue: str | None, state: str | None, limit: int
) -> list[bytes]:
    """Live records, newest first."""
    query = sql.list_statuses(queue=queue is not None, state=state is not None)
    params = {"now": time.time(), "queue": queue, "state": state, "limit": limit}
    return [bytes(record) for (record,) in conn.execute(query, params)]


def append_log(
    conn: sqlite3.Connection, log: str, entries: Sequence[bytes], retention: float
) -> None:
    """Append the entries, in order, in one transaction."""
    now = time.time()
    until = now + retention
    with immediate(conn):
        conn.execute(sql.TRIM_LOGS, (now,))
        conn.executemany(sql.APPEND_LOG, [(log, bytes(entry), until) for entry in entries])


def read_log(
    conn: sqlite3.Connection, log: str, after: int, limit: int, max_entry: int | None = None
) -> list[tuple[int, bytes | None]]:
    """Live entries with an id above `after`, oldest first, as ``(id, entry)``; an entry over
    `max_entry` bytes as ``(id, None)`` (never read into memory)."""
    largest = max_entry if max_entry is not None else ANY_SIZE
    rows = conn.execute(sql.READ_LOG, (largest, log, after, time.time(), limit))
    return [(row_id, None if entry is None else bytes(entry)) for row_id, entry in rows]


def log_tail(conn: sqlite3.Connection, log: str) -> int:
    """The highest id `log` has (0 when it has none)."""
    (last,) = conn.execute(sql.LOG_TAIL, (log,)).fetchone()
    return 0 if last is None else int(last)


def heartbeat_worker(conn: sqlite3.Connection, worker_id: str, info: bytes, ttl: float) -> None:
    """Store or renew a worker's record; forget the workers that stopped renewing theirs."""
    now = time.time()
    with immediate(conn):
        conn.execute(sql.TRIM_WORKERS, (now,))
        conn.execute(sql.HEARTBEAT_WORKER, (worker_id, bytes(info), now + ttl))


def remove_worker(conn: sqlite3.Connection, worker_id: str) -> None:
    """Delete a worker's record."""
    with immediate(conn):
        conn.execute(sql.REMOVE_WORKER, (worker_id,))


def list_workers(conn: sqlite3.Connection) -> list[bytes]:
    """The records that have not expired."""
    return [bytes(info) for (info,) in conn.execute(sql.LIST_WORKERS, (time.time(),))]


__all__ = [
    "append_log",
    "heartbeat_worker",
    "list_statuses",
    "list_workers",
    "log_tail",
    "read_log",
    "read_status",
    "remove_worker",
    "write_statuses",
]
