"""`SqliteDriver`: a queue in one SQLite file, shared safely by processes on one host."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import weakref
from collections.abc import Sequence

from asynctasq.drivers.base import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    Delivery,
    Failure,
    OutgoingMessage,
    QueueStats,
    StatusWrite,
)
from asynctasq.drivers.sql.polled_logs import (
    WaitForAppend,
    log_position,
    poll_log,
)
from asynctasq_sqlite import _lifecycle as lifecycle
from asynctasq_sqlite import _operations as ops
from asynctasq_sqlite import schema
from asynctasq_sqlite._bell import Bell, bell_for
from asynctasq_sqlite._claims import Claims
from asynctasq_sqlite._connection import SYNCHRONOUS_MODES, SqliteConnection
from asynctasq_sqlite._operations import Receipt
from asynctasq_sqlite._wakeup import LOGS, Wakeup, wakeup_for
from asynctasq_sqlite._wakeup import reset_after_fork as reset_wakeups_after_fork
from asynctasq_sqlite.errors import SqliteDriverError

MIN_POLL_INTERVAL = 0.005
"""First pause (seconds) when waiting for messages another process may enqueue."""


class SqliteDriver(Claims):
    """A queue in one SQLite file: the embedded default, no server to run.

    Several processes on one host (dispatchers and workers) may share the file: it runs in
    WAL mode (readers never block the writer), every state change is one ``BEGIN
    IMMEDIATE`` transaction, and a lock held by another process is waited for up to
    `busy_timeout`. A dequeue leases each message by writing a fresh random token and the
    lease expiry into its row, so a message is handed to exactly one consumer while its
    lease lasts, and becomes ready again, its delivery count kept, when the lease expires.

    The blocking sqlite3 calls run on one thread per driver, never on the event loop.

    Waiting for messages: within one process an enqueue through any driver on the same file
    wakes waiting dequeues at once; other processes ring a bell (a UNIX datagram socket per
    waiting process in ``<path>-bell/``, see `asynctasq_sqlite._bell`) after they commit.
    Polling stays as the safety net: an empty dequeue re-checks with a backoff from 5 ms up
    to `poll_interval`, or up to 1 s while the bell listens (each check is an index seek per
    queue without taking the write lock), and never sleeps past the moment the next delayed
    message (or expiring lease) is due.

    Lifecycle (task status records, the event and cancel logs, worker records): tables of
    their own in the same file; rows expire and are deleted by later writes. A `read_log`
    that waits is woken at once by an append in this process and otherwise checks with a
    backoff from 20 ms to 0.2 s.

    Named claims (`ClaimStore`: schedule ticks, unique tasks): a table of their own, each
    claim taken in one write transaction, so exactly one of many claimers wins.

    Durability: with the default ``synchronous="normal"`` a committed enqueue survives a
    crash of any process; a power loss or OS crash may lose the last transactions (WAL is
    fsynced at checkpoints). ``synchronous="full"`` fsyncs every commit, at a cost in
    throughput. The file must be on a local file system (WAL needs shared memory).

    Args:
        path: Database file, created if missing; relative paths are resolved against the
            working directory at construction. Env: ``ASYNCTASQ_SQLITE_PATH``.
        busy_timeout: Seconds to wait for another process's write lock before an operation
            fails with ``sqlite3.OperationalError: database is locked``.
        poll_interval: Longest pause, in seconds, between checks for messages enqueued by
            other processes while a dequeue waits.
        synchronous: ``PRAGMA synchronous``: ``off``, ``normal`` or ``full`` (or ``extra``).
        auto_migrate: Create or upgrade the schema at connect (one ``BEGIN IMMEDIATE``
            transaction, a no-op when current). Off: connecting to a file whose schema is
            missing or older raises `SchemaNotInitializedError` until ``asynctasq migrate``
            (or `init_schema`) has run.

    Raises:
        ValueError: A setting is out of range.
    """

    def __init__(
        self,
        *,
        path: str = "asynctasq.db",
        busy_timeout: float = 5.0,
        poll_interval: float = 0.05,
        synchronous: str = "normal",
        auto_migrate: bool = True,
    ) -> None:
        if not path:
            raise ValueError("path must not be empty")
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0, got {busy_timeout!r}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0, got {poll_interval!r}")
        if synchronous.lower() not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}, got {synchronous!r}"
            )
        self.path = os.path.abspath(path)
        self.busy_timeout = busy_timeout
        self.poll_interval = poll_interval
        self.synchronous = synchronous.lower()
        self.auto_migrate = auto_migrate
        self._conn: SqliteConnection | None = None
        self._connecting = asyncio.Lock()
        self._wakeup: Bell = bell_for(self.path)  # also rings other processes
        self._log_wakeup: Wakeup = wakeup_for(self.path, LOGS)
        _drivers.add(self)

    def _reset_after_fork(self) -> None:
        # A forked child (e.g. a process-pool worker) that uses this driver opens its own
        # connection and thread instead of waiting forever on the parent's.
        if self._conn is not None:
            self._conn.abandon_after_fork()
        self._conn = None
        self._connecting = asyncio.Lock()
        self._wakeup = bell_for(self.path)
        self._log_wakeup = wakeup_for(self.path, LOGS)

    def __repr__(self) -> str:
        return f"SqliteDriver(path={self.path!r})"

    async def connect(self) -> None:
        """Open the database, switch it to WAL and create the schema (idempotent).

        Raises:
            SqliteDriverError: The file is not a database, is read-only, cannot be created,
                or was written by a newer version of this driver.
            SchemaNotInitializedError: ``auto_migrate`` is off and the schema is missing
                or older than this driver.
        """
        await self._open(migrate=self.auto_migrate)

    async def _open(self, *, migrate: bool) -> None:
        if self._conn is not None:
            return
        async with self._connecting:
            if self._is_connected():  # another caller connected while we waited
                return
            conn = SqliteConnection(
                self.path,
                busy_timeout=self.busy_timeout,
                synchronous=self.synchronous,
                migrate=migrate,
            )
            await conn.open()
            self._conn = conn

    async def init_schema(self) -> list[int]:
        """Create or upgrade the schema now (``asynctasq migrate``); `connect` does it too.

        Returns:
            The schema versions applied (empty when the file was already current).

        Raises:
            SqliteDriverError: As for `connect`.
        """
        await self._open(migrate=True)  # connected already: the schema was current then
        conn = await self._connection()
        applied = list(conn.applied)
        conn.applied = []
        return applied

    def migration_sql(self) -> str:
        """The SQL that creates the schema in an empty file (``migrate --dry-run``)."""
        return schema.migration_sql()

    def _is_connected(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        """Close the connection; leased messages stay leased until their lease expires."""
        conn, self._conn = self._conn, None
        self._wakeup.release(self)
        if conn is not None:
            await conn.close()

    async def _connection(self) -> SqliteConnection:
        conn = self._conn
        if conn is None:
            await self.connect()
            conn = self._conn
            if conn is None:  # closed again by a concurrent close()
                raise SqliteDriverError(f"queue database {self.path!r} is closed")
        return conn

    async def enqueue(self, message: OutgoingMessage) -> None:
        """Store one message, ready after `message.delay` seconds.

        Raises:
            ValueError: `message.priority` is not a whole number from 0 to 9.
        """
        _check_priorities((message,))
        conn = await self._connection()
        await conn.write(ops.enqueue, (message,))
        self._wakeup.notify()

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store several messages in one transaction.

        Raises:
            ValueError: A priority is not a whole number from 0 to 9; nothing is stored.
        """
        if not messages:
            return
        _check_priorities(messages)
        conn = await self._connection()
        await conn.write(ops.enqueue, messages)
        self._wakeup.notify()

    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        """Lease up to `limit` ready messages, taking from `queues` in the order given;
        within a queue the highest priority first, then the longest ready.

        Waits up to `wait` seconds when nothing is ready: woken at once by an enqueue in
        this process, otherwise checking with a backoff up to `poll_interval`, and never
        sleeping past the due time of the next delayed message.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        queues = list(dict.fromkeys(queues))
        if not queues:
            return []
        conn = await self._connection()
        if wait > 0:  # other processes' enqueues ring this one; polling slows to a safety net
            self._wakeup.listen(self)
        longest = self._wakeup.poll_interval(self.poll_interval)
        deadline = time.monotonic() + max(wait, 0.0)
        interval = MIN_POLL_INTERVAL
        while self._conn is conn:  # closed meanwhile: stop waiting
            generation = self._wakeup.generation
            taken = await self._take(conn, queues, limit)
            if taken.deliveries:
                return taken.deliveries
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            pause = min(remaining, interval)
            if taken.next_due is not None:
                pause = min(pause, max(taken.next_due - time.time(), 0.0))
            if await self._wakeup.wait(generation, pause):
                interval = MIN_POLL_INTERVAL
            else:
                interval = min(interval * 2, longest)
        return []

    async def _take(self, conn: SqliteConnection, queues: list[str], limit: int) -> ops.Taken:
        taken: list[ops.Taken] = []

        def take_and_keep(connection: sqlite3.Connection) -> ops.Taken:
            result = ops.take(connection, queues, limit)
            taken.append(result)
            return result

        try:
            return await conn.write(take_and_keep)
        except asyncio.CancelledError:
            # The thread may be committing the leases right now. Calls run in order on
            # that thread, so this runs after it and gives back whatever it took, instead
            # of leaving the messages invisible for a whole visibility timeout.
            conn.submit_write(_release_taken, taken)
            raise

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Delete finished messages (those whose lease this consumer still holds)."""
        if deliveries:
            conn = await self._connection()
            await conn.write(ops.ack, [_receipt(d) for d in deliveries])

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Make leased messages ready now, without counting the delivery."""
        if deliveries:
            conn = await self._connection()
            await conn.write(ops.release, [_receipt(d) for d in deliveries])
            self._wakeup.notify()

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        """End the lease and make the message ready after `delay`, delivery count kept."""
        conn = await self._connection()
        await conn.write(ops.retry, _receipt(delivery), delay)
        self._wakeup.notify()

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """End the lease and keep the message, with `failure`, as a dead letter."""
        conn = await self._connection()
        await conn.write(ops.dead_letter, _receipt(delivery), failure)

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        """Push each still-held lease's expiry to `visibility_timeout` seconds from now."""
        if deliveries:
            conn = await self._connection()
            await conn.write(ops.extend, [_receipt(d) for d in deliveries], visibility_timeout)

    async def store_result(self, task_id: str, result: bytes, ttl: float) -> None:
        """Keep a task's outcome for `ttl` seconds; waiters in this process wake at once."""
        conn = await self._connection()
        await conn.write(ops.store_result, task_id, result, ttl)
        self._wakeup.notify()

    async def fetch_result(self, task_id: str, wait: float) -> bytes | None:
        """A task's kept outcome, waiting up to `wait` seconds (woken in this process,
        polled with a backoff up to `poll_interval` across processes)."""
        conn = await self._connection()
        deadline = time.monotonic() + max(wait, 0.0)
        interval = MIN_POLL_INTERVAL
        while True:
            generation = self._wakeup.generation
            found = await conn.read(ops.fetch_result, task_id)
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0 or self._conn is not conn:
                return found
            if await self._wakeup.wait(generation, min(remaining, interval)):
                interval = MIN_POLL_INTERVAL
            else:
                interval = min(interval * 2, self.poll_interval)

    # -- lifecycle: task statuses, logs, workers ------------------------------------------

    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        """Store task status records in one transaction (of two writes for one id, the later
        wins); each write makes its record the most recent."""
        if writes:
            conn = await self._connection()
            await conn.write(lifecycle.write_statuses, list(writes))

    async def read_status(self, task_id: str) -> bytes | None:
        """The status record of `task_id`, or None (never tracked, or expired)."""
        conn = await self._connection()
        return await conn.read(lifecycle.read_status, task_id)

    async def list_statuses(
        self, *, queue: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[bytes]:
        """Live status records, most recently written first, filtered by queue and/or state."""
        conn = await self._connection()
        return await conn.read(lifecycle.list_statuses, queue, state, max(limit, 0))

    async def append_log(self, log: str, entries: Sequence[bytes], retention: float) -> None:
        """Append entries to `log` in one transaction, kept `retention` seconds; readers in
        this process wake at once."""
        if not entries:
            return
        conn = await self._connection()
        await conn.write(lifecycle.append_log, log, list(entries), retention)
        self._log_wakeup.notify()

    async def read_log(
        self,
        log: str,
        cursor: str | None,
        *,
        wait: float,
        limit: int = 1000,
        max_entry: int | None = None,
    ) -> tuple[list[bytes], str]:
        """Entries of `log` after `cursor` (the last id read), oldest first, at most `limit`.

        When there are none, waits up to `wait` seconds: woken by an append in this process,
        otherwise checking with the backoff of `asynctasq.drivers.sql.polled_logs` (SQLite
        cannot notify another process).

        Raises:
            ValueError: `limit` < 1, or `cursor` is not one this driver returned.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        after = log_position(cursor, "SqliteDriver")
        conn = await self._connection()
        wakeup = self._log_wakeup

        def arm() -> WaitForAppend:
            generation = wakeup.generation

            async def wait_for_append(seconds: float) -> None:
                await wakeup.wait(generation, seconds)

            return wait_for_append

        found: list[tuple[int, bytes | None]] = await poll_log(
            lambda: conn.read(lifecycle.read_log, log, after, limit, max_entry),
            arm,
            wait=wait,
            still_open=lambda: self._conn is conn,  # closed meanwhile: stop waiting
        )
        if not found:
            return [], cursor or "0"
        return [entry for _, entry in found if entry is not None], str(found[-1][0])

    async def log_tail(self, log: str) -> str:
        """A cursor after the last entry of `log` (``"0"`` when it has none)."""
        conn = await self._connection()
        return str(await conn.read(lifecycle.log_tail, log))

    async def heartbeat_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        """Store or renew worker `worker_id`'s record for `ttl` seconds."""
        conn = await self._connection()
        await conn.write(lifecycle.heartbeat_worker, worker_id, info, ttl)

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        conn = await self._connection()
        await conn.write(lifecycle.remove_worker, worker_id)

    async def list_workers(self) -> list[bytes]:
        """The records of the workers whose record has not expired, by worker id."""
        conn = await self._connection()
        return await conn.read(lifecycle.list_workers)

    # -- inspection ------------------------------------------------------------------------

    async def queue_names(self) -> list[str]:
        """Queues with a ready, delayed, leased or dead message, sorted by name."""
        conn = await self._connection()
        return await conn.read(ops.queue_names)

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Counts per queue, in the order given, from one consistent snapshot.

        A message whose lease expired counts as ready.
        """
        conn = await self._connection()
        return await conn.read(ops.stats, list(queues))

    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids."""
        conn = await self._connection()
        return await conn.read(ops.list_dead_letters, queue, _ids(task_ids), max(limit, 0))

    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Move dead letters back to their queues, ready now, attempts reset; how many."""
        conn = await self._connection()
        moved = await conn.write(ops.retry_dead_letters, queue, _ids(task_ids))
        if moved:
            self._wakeup.notify()
        return moved

    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Delete dead letters (all of them with neither filter); return how many."""
        conn = await self._connection()
        return await conn.write(ops.purge_dead_letters, queue, _ids(task_ids))

    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of a queue; live leases stay."""
        conn = await self._connection()
        return await conn.write(ops.purge, queue)


_drivers: weakref.WeakSet[SqliteDriver] = weakref.WeakSet()


def _reset_drivers_after_fork() -> None:
    reset_wakeups_after_fork()
    for driver in list(_drivers):
        driver._reset_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_drivers_after_fork)


def _receipt(delivery: Delivery) -> Receipt:
    receipt = delivery.receipt
    if not isinstance(receipt, Receipt):
        raise TypeError(f"not a delivery of SqliteDriver: receipt {receipt!r}")
    return receipt


def _ids(task_ids: Sequence[str] | None) -> list[str] | None:
    # A bare string is a Sequence[str] too; treat it as one id, not as its characters.
    if isinstance(task_ids, str):
        return [task_ids]
    return None if task_ids is None else list(task_ids)


def _release_taken(conn: sqlite3.Connection, taken: list[ops.Taken]) -> None:
    receipts = [_receipt(d) for t in taken for d in t.deliveries]
    if receipts:
        ops.release(conn, receipts)


__all__ = ["SqliteDriver"]


def _check_priorities(messages: Sequence[OutgoingMessage]) -> None:
    """Refuse a priority the dequeue could not order (the table would keep any value)."""
    for message in messages:
        priority = message.priority
        if type(priority) is not int or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise ValueError(
                f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, got "
                f"{priority!r} (task {message.task_id}); nothing was queued"
            )
