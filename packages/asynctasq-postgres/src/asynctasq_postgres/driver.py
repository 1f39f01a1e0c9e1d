"""`PostgresDriver`: AsyncTasQ's queue on PostgreSQL tables, through asyncpg.

How it keeps every task (see `asynctasq_postgres.sql` for the row model):

* dequeue leases a batch with ``FOR UPDATE SKIP LOCKED`` in one statement, moving each
  row's ``available_at`` to its lease deadline, so an expired lease makes the row ready
  again with its delivery count kept;
* ack, retry, release, extend and dead-letter are each one statement, matched on the
  receipt ``(id, lease_seq)`` so a stale receipt changes nothing;
* an idle `dequeue` sleeps on one LISTEN connection, woken by the ``pg_notify`` that every
  enqueue sends in its own statement (so at commit), with a bounded fallback poll and a
  timer for the next delayed row;
* task status records, the ``events`` and ``cancels`` logs and worker records live in
  tables of their own (schema version 3), one statement per call; a log reader waits on the
  same LISTEN connection, woken by the ``pg_notify`` of each append;
* named claims (schedule ticks, unique tasks) live in a table of their own (schema version
  4; see `asynctasq_postgres.claims`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from asynctasq.drivers.base import (
    DeadLetter,
    Delivery,
    Failure,
    OutgoingMessage,
    QueueStats,
    StatusWrite,
)
from asynctasq.drivers.sql.caller import Where
from asynctasq.drivers.sql.polled_logs import ANY_SIZE
from asynctasq_postgres import pool_log
from asynctasq_postgres.caller_connection import caller_connection, same_database, where
from asynctasq_postgres.claims import Claims, ClaimStatements
from asynctasq_postgres.dsn import redact_dsn
from asynctasq_postgres.listener import Listener
from asynctasq_postgres.missing_schema import explain_missing_schema as _explain_missing_schema
from asynctasq_postgres.naming import TableNames
from asynctasq_postgres.rows import (
    deliveries_from,
    enqueue_args,
    insert,
    log_cursor,
    receipt_arrays,
    status_arrays,
    uuid_filter,
)
from asynctasq_postgres.schema import apply_migrations, migration_sql, schema_version
from asynctasq_postgres.sql import (
    DQ_AVAILABLE,
    DQ_ID,
    DQ_ORD,
    DQ_QUEUE,
    DQ_RANK,
    LOG_WAKE,
    PLANNER_SETTINGS,
    RESULT_WAKE,
    Statements,
)

log = logging.getLogger("asynctasq.postgres")
pool_log.install()

_MIN_SLEEP = 0.002
"""Shortest pause before looking again at a row that is due but locked by someone else."""

_FLOOR_TTL = 1.0
"""Seconds a dequeue floor (see `asynctasq_postgres.sql`) is used before a full look."""

_SWEEP_INTERVAL = 10.0
"""Seconds between two deletions of expired status records (or log entries) by one driver:
reads filter expired rows anyway, so deleting them is housekeeping that need not ride on
every write."""

_SWEEP_BATCH = 500
"""Most expired rows one write deletes; a full batch makes the next write sweep again."""


class PostgresDriver(Claims):
    """A reliable queue on PostgreSQL (asyncpg). Constructor keywords are the settings.

    Nothing connects in the constructor: the pool opens on first use (`connect` is
    idempotent), and the LISTEN connection on the first `dequeue` that waits.

    Args:
        dsn: ``postgresql://user:password@host:port/database?sslmode=...``, parsed by asyncpg
            (percent-encoded passwords work). None uses libpq's ``PG*`` environment.
        schema: Schema holding the tables (created by `init_schema` when missing).
        queue_table: Queue table name (letters, digits, underscores).
        dead_letter_table: Dead-letter table name.
        migrations_table: Schema-version table; defaults to ``<queue_table>_migrations``.
        min_pool_size: Connections opened with the pool and kept (capped at `max_pool_size`);
            more are opened as needed, up to `max_pool_size`. Each worker process holds its
            own pool, so a small floor keeps many workers within the server's
            `max_connections`.
        max_pool_size: Most connections the pool opens.
        poll_interval: Longest sleep of an idle `dequeue` between looks at the table when no
            notification arrives (a safety net; notifications normally wake it at once).
        command_timeout: Seconds before a statement is cancelled (None: no limit).
        connect_timeout: Seconds to establish a connection.
        application_name: ``application_name`` of the connections (the LISTEN connection
            adds ``-listen``), shown in ``pg_stat_activity``.
        auto_migrate: Create or upgrade the tables when the pool opens (`init_schema`).
            When the schema is current this is one read: no lock, no DDL, so workers need
            no CREATE privilege once it is in place. Off: an operation on missing or older
            tables raises `SchemaNotInitializedError` until ``asynctasq migrate`` has run.
        async_commit_leases: Commit lease changes (dequeue, ack, extend, release, retry)
            without waiting for the WAL flush (``synchronous_commit = off`` for those
            statements only). Losing one of them to a *server* crash only means a task is
            delivered again, which at-least-once delivery allows, and it takes the disk
            flush off the hot path. Enqueues and dead-lettering always wait for the flush,
            so a dispatched task or a recorded failure is never lost. False: every
            statement commits synchronously.

    Raises:
        InvalidIdentifierError: A schema or table name is not a plain identifier.
        ValueError: Inconsistent pool sizes or timeouts.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = "public",
        queue_table: str = "task_queue",
        dead_letter_table: str = "dead_letter_queue",
        migrations_table: str | None = None,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        poll_interval: float = 2.0,
        command_timeout: float | None = None,
        connect_timeout: float = 10.0,
        application_name: str = "asynctasq",
        auto_migrate: bool = True,
        async_commit_leases: bool = True,
    ) -> None:
        if min_pool_size < 0 or max_pool_size < 1:
            raise ValueError(
                f"need min_pool_size >= 0 (got {min_pool_size}) and max_pool_size >= 1 "
                f"(got {max_pool_size})"
            )
        if poll_interval <= 0 or connect_timeout <= 0:
            raise ValueError("poll_interval and connect_timeout must be positive")
        self._dsn = dsn
        self._names = TableNames(
            schema=schema,
            queue_table=queue_table,
            dead_letter_table=dead_letter_table,
            migrations_table=migrations_table or f"{queue_table}_migrations",
        )
        self._sql = Statements.build(self._names, async_commit_leases=async_commit_leases)
        self._claim_sql = ClaimStatements.build(self._names)
        self._min_pool_size = min(min_pool_size, max_pool_size)
        self._max_pool_size = max_pool_size
        self._poll_interval = poll_interval
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._application_name = application_name
        self._auto_migrate = auto_migrate
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._same_database = same_database()
        self._listener: Listener | None = None
        self._lock = asyncio.Lock()
        self._floors: dict[str, tuple[datetime, int, float]] = {}
        self._sweep_due: dict[str, float] = {}

    def __repr__(self) -> str:
        return (
            f"PostgresDriver(dsn={redact_dsn(self._dsn)!r}, schema={self._names.schema!r}, "
            f"queue_table={self._names.queue_table!r}, "
            f"dead_letter_table={self._names.dead_letter_table!r})"
        )

    # -- names and schema ----------------------------------------------------------------

    @property
    def table_names(self) -> TableNames:
        """The validated schema and table names this driver uses."""
        return self._names

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this queue table."""
        return self._names.channel

    def migration_sql(self) -> str:
        """The full schema script, for review or a ``--dry-run`` (does not connect)."""
        return migration_sql(self._names)

    async def init_schema(self) -> list[int]:
        """Create or upgrade the tables (idempotent; safe from many processes at once).

        Returns:
            The migration versions applied by this call (empty when already current).
        """
        pool = await self._ensure_pool()
        async with pool.acquire() as connection:
            return await apply_migrations(connection, self._names)

    async def schema_version(self) -> int:
        """The applied schema version (0 when the tables were never created)."""
        pool = await self._ensure_pool()
        async with pool.acquire() as connection:
            return await schema_version(connection, self._names)

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection pool (idempotent)."""
        await self._ensure_pool()

    async def close(self) -> None:
        """Close the LISTEN connection and the pool; `connect` may follow."""
        async with self._lock:
            listener, self._listener = self._listener, None
            pool, self._pool = self._pool, None
        if listener is not None:
            await listener.close()
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10.0)
            except TimeoutError:
                pool.terminate()

    async def _ensure_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        pool = self._pool
        if pool is not None:
            return pool
        async with self._lock:
            if self._pool is None:
                try:
                    pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=self._min_pool_size,
                        max_size=self._max_pool_size,
                        timeout=self._connect_timeout,
                        command_timeout=self._command_timeout,
                        server_settings={
                            "application_name": self._application_name,
                            **PLANNER_SETTINGS,
                        },
                    )
                except Exception as exc:  # "Connection refused" names no server, no setting
                    exc.add_note(
                        f"while connecting to PostgreSQL at {redact_dsn(self._dsn)} (the "
                        "postgres.dsn setting, ASYNCTASQ_POSTGRES_DSN)"
                    )
                    raise
                if self._dsn is None:
                    try:
                        await _say_where(pool)
                    except BaseException:  # cancelled: the pool is nobody's, close it
                        pool.terminate()
                        raise
                if self._auto_migrate:
                    try:
                        async with pool.acquire() as connection:
                            await apply_migrations(connection, self._names)
                    except BaseException:
                        pool.terminate()
                        raise
                self._pool = pool
            return self._pool

    async def _ensure_listener(self) -> Listener:
        listener = self._listener
        if listener is None:
            listener = self._listener = Listener(self._connect_listener, self._names.channel)
        await listener.start()
        return listener

    async def _connect_listener(self) -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": f"{self._application_name}-listen"},
        )

    # -- enqueue -------------------------------------------------------------------------

    @_explain_missing_schema
    async def enqueue(self, message: OutgoingMessage) -> None:
        """Store one message, ready after `message.delay` seconds (one round-trip)."""
        pool = self._pool or await self._ensure_pool()
        if message.priority:
            await pool.execute(self._sql.enqueue_ranked, *enqueue_args(message), message.priority)
        else:
            await pool.execute(self._sql.enqueue, *enqueue_args(message))

    @_explain_missing_schema
    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store several messages in one statement (one round-trip)."""
        if not messages:
            return
        pool = self._pool or await self._ensure_pool()
        statement, args = insert(self._sql, messages)
        await pool.execute(statement, *args)

    @_explain_missing_schema
    async def enqueue_with_connection(
        self,
        connection: object,
        messages: Sequence[OutgoingMessage],
        *,
        statuses: Sequence[StatusWrite] = (),
    ) -> None:
        """Store messages through the caller's connection, inside the caller's transaction.

        The rows and their wake-up notifications become visible when the caller commits; a
        rollback leaves no task behind. Core's ``dispatch(connection=conn)`` calls this.

        Example:
            ```python
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO orders ...")
                await driver.enqueue_with_connection(conn, [message])
            ```

        Args:
            connection: An asyncpg connection (plain or from a pool), usually inside
                ``connection.transaction()``, or a SQLAlchemy ``AsyncSession`` or
                ``AsyncConnection`` on asyncpg (see `caller_connection`); the driver neither
                commits nor closes it.
            messages: The messages to store.
            statuses: Status records of tracked tasks among them, written first in the
                same transaction: they exist if and only if the messages do.

        Raises:
            TypeError: `connection` is none of those (the message says what to pass).
            ValueError: `connection` is on another database or server than the driver's.
        """
        connection = await caller_connection(connection)
        if not messages:
            return
        await self._same_database.check(connection, self._where)
        statement, args = insert(self._sql, messages)
        if not statuses:
            await connection.execute(statement, *args)
            return
        # Both or neither: inside the caller's transaction an error aborts it; outside one
        # (autocommit) they get a transaction of their own.
        async with contextlib.AsyncExitStack() as scope:
            if not connection.is_in_transaction():
                await scope.enter_async_context(connection.transaction())
            # No sweep of expired records here (limit 0): it would hold their row locks
            # until the caller's transaction ends.
            await connection.fetchval(self._sql.write_statuses, *status_arrays(statuses), 0)
            await connection.execute(statement, *args)

    async def _where(self) -> Where:
        """Where this driver's own connections queue (see `caller_connection.where`)."""
        pool = self._pool or await self._ensure_pool()
        async with pool.acquire() as connection:
            return await where(connection)

    # -- dequeue -------------------------------------------------------------------------

    @_explain_missing_schema
    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        """Lease up to `limit` ready messages, earlier queues first.

        With `wait` > 0 and nothing ready, sleeps until a notification for one of `queues`,
        the next delayed row's due time, the fallback poll interval or the end of `wait`,
        whichever comes first.

        Raises:
            ValueError: `limit` < 1.
        """
        return await self._dequeue(queues, limit, wait, ())

    @_explain_missing_schema
    async def ack_and_dequeue(
        self, acks: Sequence[Delivery], queues: Sequence[str], *, limit: int, wait: float
    ) -> list[Delivery]:
        """`ack` `acks` and `dequeue` in one statement, so a worker settles a finished batch
        and takes the next in one round-trip."""
        return await self._dequeue(queues, limit, wait, acks)

    async def _dequeue(
        self, queues: Sequence[str], limit: int, wait: float, acks: Sequence[Delivery]
    ) -> list[Delivery]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        pool = self._pool or await self._ensure_pool()
        names = list(queues)
        if not names:
            await self.ack(acks)
            return []
        if wait <= 0:
            return self._leased(names, limit, await self._fetch_batch(pool, names, limit, acks))
        listener = await self._ensure_listener()
        waiter = listener.subscribe(names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            while True:
                waiter.reset()  # before looking, so a notification during the query counts
                rows = await self._fetch_batch(pool, names, limit, acks)
                acks = ()  # applied by that statement
                if rows:
                    return self._leased(names, limit, rows)
                self._drop_floors(names)
                if loop.time() >= deadline:
                    return []
                due_in: float | None = await pool.fetchval(self._sql.next_due, names)
                next_due = None if due_in is None else loop.time() + max(due_in, _MIN_SLEEP)
                while True:
                    now = loop.time()
                    if now >= deadline or self._pool is not pool:
                        return []
                    target = min(deadline, now + self._poll_interval)
                    if next_due is not None:
                        target = min(target, next_due)
                    if waiter.due is not None:
                        target = min(target, max(waiter.due, now + _MIN_SLEEP))
                    signalled = await waiter.wait(target - now)
                    if self._pool is not pool:
                        return []
                    if waiter.ready or not signalled:
                        break  # woken, poll interval or a due time: look again
        finally:
            listener.unsubscribe(waiter)

    async def _fetch_batch(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        names: list[str],
        limit: int,
        acks: Sequence[Delivery] = (),
    ) -> list[asyncpg.Record]:
        floors = self._floors
        at: list[datetime | None] = [None] * len(names)
        ids: list[int | None] = [None] * len(names)
        if floors:
            expired = asyncio.get_running_loop().time() - _FLOOR_TTL
            for index, name in enumerate(names):
                entry = floors.get(name)
                if entry is not None and entry[2] > expired:
                    at[index], ids[index] = entry[0], entry[1]
        if acks:
            ack_ids, ack_seqs = receipt_arrays(acks)
            return await pool.fetch(
                self._sql.ack_and_dequeue, names, limit, at, ids, ack_ids, ack_seqs
            )
        return await pool.fetch(self._sql.dequeue, names, limit, at, ids)

    def _leased(self, names: list[str], limit: int, rows: list[asyncpg.Record]) -> list[Delivery]:
        deliveries = deliveries_from(rows)
        if len(rows) < limit:
            self._drop_floors(names)  # the front may hold rows below a floor: look there next
        else:
            now = asyncio.get_running_loop().time()
            seen: set[int] = set()
            for row in rows:  # sorted: the first row of each queue is its lowest position
                # the floor is a position in the priority-0 scan: ranked rows are not in it
                if row[DQ_RANK] == 0 and row[DQ_ORD] not in seen:
                    seen.add(row[DQ_ORD])
                    self._floors[row[DQ_QUEUE]] = (row[DQ_AVAILABLE], row[DQ_ID], now)
        return deliveries

    def _drop_floors(self, names: list[str]) -> None:
        if self._floors:
            for name in names:
                self._floors.pop(name, None)

    # -- lease changes -------------------------------------------------------------------

    @_explain_missing_schema
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Delete finished messages (one statement for the batch)."""
        if not deliveries:
            return
        pool = self._pool or await self._ensure_pool()
        ids, seqs = receipt_arrays(deliveries)
        await pool.execute(self._sql.ack, ids, seqs)

    @_explain_missing_schema
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Make leased messages ready now and un-count their delivery."""
        if not deliveries:
            return
        pool = self._pool or await self._ensure_pool()
        ids, seqs = receipt_arrays(deliveries)
        await pool.execute(self._sql.release, ids, seqs)

    @_explain_missing_schema
    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        """End the lease and make the message ready after `delay` (count kept)."""
        pool = self._pool or await self._ensure_pool()
        row_id, seq = delivery.receipt
        await pool.execute(self._sql.retry, row_id, seq, max(float(delay), 0.0))

    @_explain_missing_schema
    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """Move the message to the dead-letter table with its error, in one statement."""
        pool = self._pool or await self._ensure_pool()
        row_id, seq = delivery.receipt
        await pool.execute(
            self._sql.dead_letter,
            row_id,
            seq,
            failure.exception_type,
            failure.message,
            failure.traceback,
        )

    @_explain_missing_schema
    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        """Push each held lease's deadline to `visibility_timeout` seconds from now."""
        if not deliveries:
            return
        pool = self._pool or await self._ensure_pool()
        ids, seqs = receipt_arrays(deliveries)
        await pool.execute(self._sql.extend, ids, seqs, float(visibility_timeout))

    # -- results -------------------------------------------------------------------------

    @_explain_missing_schema
    async def store_result(self, task_id: str, result: bytes, ttl: float) -> None:
        """Keep a task's outcome for `ttl` seconds (replacing an earlier one)."""
        pool = self._pool or await self._ensure_pool()
        await pool.execute(self._sql.store_result, task_id, result, float(ttl))

    @_explain_missing_schema
    async def fetch_result(self, task_id: str, wait: float) -> bytes | None:
        """A task's kept outcome, waiting up to `wait` seconds: woken by the NOTIFY that
        storing it sends (`poll_interval` is only a safety net)."""
        pool = self._pool or await self._ensure_pool()
        if wait <= 0:
            found: bytes | None = await pool.fetchval(self._sql.fetch_result, task_id)
            return found
        listener = await self._ensure_listener()
        waiter = listener.subscribe([RESULT_WAKE + task_id])
        deadline = time.monotonic() + wait
        try:
            while True:
                waiter.reset()  # before looking, so a notification during the query counts
                found = await pool.fetchval(self._sql.fetch_result, task_id)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0 or self._pool is not pool:
                    return found
                await waiter.wait(min(remaining, self._poll_interval))
        finally:
            listener.unsubscribe(waiter)

    # -- task status records -------------------------------------------------------------

    @_explain_missing_schema
    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        """Store status records (one statement for the batch; of two writes for one task,
        the later wins). Now and then the same statement deletes expired records."""
        if not writes:
            return
        pool = self._pool or await self._ensure_pool()
        sweep = self._sweep_limit("status")
        swept: int = await pool.fetchval(self._sql.write_statuses, *status_arrays(writes), sweep)
        self._swept("status", sweep, swept)

    @_explain_missing_schema
    async def read_status(self, task_id: str) -> bytes | None:
        """The record of `task_id`, or None (never tracked, or expired)."""
        pool = self._pool or await self._ensure_pool()
        found: bytes | None = await pool.fetchval(self._sql.read_status, task_id)
        return found

    @_explain_missing_schema
    async def list_statuses(
        self, *, queue: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[bytes]:
        """Live records, most recently written first, filtered by queue and/or state."""
        if limit < 1:
            return []
        pool = self._pool or await self._ensure_pool()
        if queue is not None and state is not None:
            rows = await pool.fetch(self._sql.list_statuses_by_queue_state, queue, state, limit)
        elif queue is not None:
            rows = await pool.fetch(self._sql.list_statuses_by_queue, queue, limit)
        elif state is not None:
            rows = await pool.fetch(self._sql.list_statuses_by_state, state, limit)
        else:
            rows = await pool.fetch(self._sql.list_statuses, limit)
        return [row[0] for row in rows]

    # -- logs ----------------------------------------------------------------------------

    @_explain_missing_schema
    async def append_log(self, log: str, entries: Sequence[bytes], retention: float) -> None:
        """Append entries in order (one statement) and wake the log's readers by NOTIFY at
        commit. Now and then the same statement deletes expired entries."""
        if not entries:
            return
        pool = self._pool or await self._ensure_pool()
        sweep = self._sweep_limit("log")
        row = await pool.fetchrow(self._sql.append_log, log, list(entries), float(retention), sweep)
        assert row is not None
        self._swept("log", sweep, row[0])

    @_explain_missing_schema
    async def read_log(
        self,
        log: str,
        cursor: str | None,
        *,
        wait: float,
        limit: int = 1000,
        max_entry: int | None = None,
    ) -> tuple[list[bytes], str]:
        """Entries after `cursor`, oldest first; a reader that waits is woken by the NOTIFY
        of an append (`poll_interval` is only a safety net).

        Raises:
            ValueError: `limit` < 1, or `cursor` did not come from this driver.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        after = log_cursor(cursor)
        unchanged = cursor if cursor is not None else "0"
        pool = self._pool or await self._ensure_pool()
        if wait <= 0:
            return await self._read_log(pool, log, after, limit, max_entry) or ([], unchanged)
        listener = await self._ensure_listener()
        waiter = listener.subscribe([LOG_WAKE + log])
        deadline = time.monotonic() + wait
        try:
            while True:
                waiter.reset()  # before looking, so an append during the query counts
                found = await self._read_log(pool, log, after, limit, max_entry)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0 or self._pool is not pool:
                    return found or ([], unchanged)
                signalled = await waiter.wait(min(remaining, self._poll_interval))
                if not signalled and remaining <= self._poll_interval and listener.connected:
                    # The whole wait passed with the listener up and no append announced:
                    # nothing new to look for (an idle reader costs one look per call).
                    return [], unchanged
        finally:
            listener.unsubscribe(waiter)

    async def _read_log(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        log: str,
        after: int,
        limit: int,
        max_entry: int | None,
    ) -> tuple[list[bytes], str] | None:
        """One look at the log (see the lock protocol in `asynctasq_postgres.sql`); None
        when there is nothing after `after`. Entries over `max_entry` bytes come back as
        NULL (never sent) and are passed over."""
        settled: int | None = await pool.fetchval(self._sql.log_settled, log, after)
        if settled is None:
            return None
        largest = max_entry if max_entry is not None else ANY_SIZE
        rows = await pool.fetch(self._sql.read_log, log, after, settled, limit, largest)
        if not rows:
            return None  # expired in between
        return [row[1] for row in rows if row[1] is not None], str(rows[-1][0])

    @_explain_missing_schema
    async def log_tail(self, log: str) -> str:
        """A cursor after the newest entry of `log` ("0" when it has none)."""
        pool = self._pool or await self._ensure_pool()
        return str(await pool.fetchval(self._sql.log_tail, log))

    # -- worker registry -----------------------------------------------------------------

    @_explain_missing_schema
    async def heartbeat_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        """Store (or renew) a worker's record for `ttl` seconds; deletes expired ones."""
        pool = self._pool or await self._ensure_pool()
        await pool.execute(self._sql.heartbeat_worker, worker_id, info, float(ttl))

    @_explain_missing_schema
    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        pool = self._pool or await self._ensure_pool()
        await pool.execute(self._sql.remove_worker, worker_id)

    @_explain_missing_schema
    async def list_workers(self) -> list[bytes]:
        """The records of the workers whose record has not expired."""
        pool = self._pool or await self._ensure_pool()
        return [row[0] for row in await pool.fetch(self._sql.list_workers)]

    def _sweep_limit(self, table: str) -> int:
        """How many expired rows of `table` the next write may delete (0: not now)."""
        now = time.monotonic()
        if now < self._sweep_due.get(table, 0.0):
            return 0
        self._sweep_due[table] = now + _SWEEP_INTERVAL
        return _SWEEP_BATCH

    def _swept(self, table: str, limit: int, count: int) -> None:
        if limit and count >= limit:
            self._sweep_due[table] = 0.0  # more are due: the next write sweeps again

    # -- inspection and administration ---------------------------------------------------

    @_explain_missing_schema
    async def queue_names(self) -> list[str]:
        """Queues with ready, delayed, leased or dead messages, sorted."""
        pool = self._pool or await self._ensure_pool()
        return [row[0] for row in await pool.fetch(self._sql.queue_names)]

    @_explain_missing_schema
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Counts per queue, in the order given (``extra['oldest_ready_age']`` in seconds)."""
        if not queues:
            return []
        pool = self._pool or await self._ensure_pool()
        rows = await pool.fetch(self._sql.stats, list(queues))
        return [
            QueueStats(
                queue=row[0],
                ready=row[1],
                delayed=row[2],
                in_flight=row[3],
                dead=row[4],
                extra={"oldest_ready_age": row[5]},
            )
            for row in rows
        ]

    @_explain_missing_schema
    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of `queue` (leased ones stay)."""
        pool = self._pool or await self._ensure_pool()
        count: int = await pool.fetchval(self._sql.purge, queue)
        return count

    @_explain_missing_schema
    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids."""
        pool = self._pool or await self._ensure_pool()
        rows = await pool.fetch(self._sql.list_dead_letters, queue, uuid_filter(task_ids), limit)
        return [
            DeadLetter(
                task_id=str(row[0]),
                queue=row[1],
                payload=row[2],
                failure=Failure(exception_type=row[3], message=row[4], traceback=row[5]),
                attempts=row[6],
                failed_at=row[7],
            )
            for row in rows
        ]

    @_explain_missing_schema
    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Move dead letters back to their queues, ready now, attempts reset to 0."""
        pool = self._pool or await self._ensure_pool()
        row = await pool.fetchrow(self._sql.retry_dead_letters, queue, uuid_filter(task_ids))
        assert row is not None
        moved: int = row[0]
        return moved

    @_explain_missing_schema
    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Delete dead letters (all of them without filters). Returns how many."""
        pool = self._pool or await self._ensure_pool()
        count: int = await pool.fetchval(self._sql.purge_dead_letters, queue, uuid_filter(task_ids))
        return count


async def _say_where(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    """Log the database a driver with no DSN reached: libpq's defaults (the OS user's name
    as both user and database) would otherwise take a worker, and its tables, somewhere
    nobody named, in silence."""
    try:
        row = await pool.fetchrow("SELECT current_database(), current_user")
    except Exception:  # only a report: the pool works, or the next query says why not
        return
    database, user = row if row is not None else ("?", "?")
    defaults = not any(
        os.environ.get(name) for name in ("PGHOST", "PGDATABASE", "PGUSER", "PGSERVICE")
    )
    log.log(
        logging.WARNING if defaults else logging.INFO,
        "asynctasq: no postgres dsn set (postgres.dsn, ASYNCTASQ_POSTGRES_DSN): connected "
        "with libpq's %s to database %r as %r",
        "defaults" if defaults else "PG* environment",
        database,
        user,
    )


__all__ = ["PostgresDriver"]
