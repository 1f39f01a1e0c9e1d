"""`MySQLDriver`: a reliable queue on MySQL 8 / MariaDB 10.6+ through aiomysql.

Storage model (one row per message in the queue table):

* ``available_at`` is the due time of a waiting row and the lease deadline of a leased one,
  so "ready" is one index range, ``queue = ? AND available_at <= now``, and an expired lease
  is ready again without any sweeper, its ``attempts`` kept.
* A dequeue runs ``SELECT ... FOR UPDATE SKIP LOCKED`` over that range (FIFO by due time,
  batch of ``limit``) and an ``UPDATE`` that counts the delivery, stamps a random
  ``lease_token`` and moves ``available_at`` to now + the row's own visibility timeout, in
  one transaction. The receipt is ``(id, lease_token)``; every later state change matches
  both, so a consumer whose lease expired and was handed on cannot touch the new lease.
* All times come from the server clock (``UTC_TIMESTAMP(6)``): workers on hosts with skewed
  clocks still agree on what is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import aiomysql

from asynctasq.drivers.base import (
    DeadLetter,
    Delivery,
    Failure,
    OutgoingMessage,
    QueueStats,
    StatusWrite,
)
from asynctasq.drivers.given_back import GivenBack
from asynctasq.drivers.sql.caller import Where
from asynctasq.errors import SchemaNotInitializedError
from asynctasq_mysql import dead_letters
from asynctasq_mysql.caller_connection import caller_connection, same_database, where
from asynctasq_mysql.claims import MySQLClaims
from asynctasq_mysql.dsn import SSLMode, parse_dsn
from asynctasq_mysql.errors import ConfigurationError
from asynctasq_mysql.idle import IdleBackoff
from asynctasq_mysql.lifecycle import MySQLLifecycle
from asynctasq_mysql.pool import (
    abandon,
    close_pool,
    create_pool,
    execute,
    fetchall,
    rollback_quietly,
)
from asynctasq_mysql.schema import (
    TableNames,
    apply_migrations,
    migration_sql,
    pending_versions,
)
from asynctasq_mysql.server import ServerInfo, check_server
from asynctasq_mysql.sql import (
    Statements,
    lease_condition,
    lease_params,
    micros,
    placeholders,
)

logger = logging.getLogger("asynctasq_mysql")

DEFAULT_DSN = "mysql://root@127.0.0.1:3306/asynctasq"
_ROWS_PER_STATEMENT = 1000  # keeps IN lists and multi-row INSERTs in a sane range
_DUE_SLACK = 0.002  # seconds added to the next due time before polling again


class Lease(NamedTuple):
    """The receipt of one delivery: the row and the token of the lease on it."""

    row_id: int
    token: int


def _chunks(items: Sequence[Any], size: int = _ROWS_PER_STATEMENT) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _all_or_nothing(connection: aiomysql.Connection, statements: Sequence[bytes]) -> None:
    """Run `statements` on the caller's connection so that all or none of them take effect.

    MySQL undoes only the failed statement, not the transaction: a caller that catches the
    error and commits would keep the ones before it (a status record without its task).
    Several statements therefore run inside a savepoint, or inside a transaction of their own
    on a connection in autocommit mode; nothing is committed in the caller's transaction.
    """
    async with connection.cursor() as cursor:
        if len(statements) == 1:
            await cursor.execute(statements[0])
            return
        own = connection.get_autocommit()
        await cursor.execute("BEGIN" if own else "SAVEPOINT asynctasq_enqueue")
        try:
            for statement in statements:
                await cursor.execute(statement)
        except BaseException:
            with contextlib.suppress(aiomysql.Error):
                await cursor.execute(
                    "ROLLBACK" if own else "ROLLBACK TO SAVEPOINT asynctasq_enqueue"
                )
            raise
        await cursor.execute("COMMIT" if own else "RELEASE SAVEPOINT asynctasq_enqueue")


class MySQLDriver(MySQLLifecycle, MySQLClaims):
    """Queue driver for MySQL 8.0.1+ and MariaDB 10.6+ (``SKIP LOCKED`` is required).

    Also keeps task status records, the event and cancel logs and worker records
    (`MySQLLifecycle`) and named claims (`MySQLClaims`), in tables named after the queue
    table.

    Every keyword is a setting (``ASYNCTASQ_MYSQL_<NAME>`` in the environment). Nothing
    connects until the first operation or `connect`.

    Args:
        dsn: ``mysql://user:password@host:3306/database?ssl_mode=...``; see `parse_dsn`
            for the options. Percent-encode special characters in the password.
        queue_table: Table holding waiting and leased messages.
        dead_letter_table: Table holding dead letters.
        migrations_table: Table recording applied schema versions (default
            ``<queue_table>_migrations``).
        min_pool_size: Connections opened at connect and kept; more are opened as needed, up
            to `max_pool_size` (a small floor keeps many worker processes within the
            server's `max_connections`).
        max_pool_size: Most connections open at once.
        auto_migrate: Create or upgrade the tables at connect (`init_schema`). When the
            schema is current this is one read: no lock, no DDL, so workers need no CREATE
            privilege once it is in place. Off: connecting fails with
            `SchemaNotInitializedError` until ``asynctasq migrate`` has run.
        max_payload_size: Largest payload, in bytes, the driver must accept; `connect`
            fails with a hint when the server's ``max_allowed_packet`` cannot carry it
            (escaping may double binary data). None: 16 MiB if the server allows it,
            otherwise whatever the server allows (noted at INFO; a larger payload is
            refused at dispatch, with the hint).
        poll_interval_min: First idle sleep between polls, in seconds.
        poll_interval_max: Longest idle sleep between polls, in seconds.
        pool_recycle: Seconds after which an idle connection is replaced (-1: never).

    Raises:
        ConfigurationError: The DSN or a setting is invalid (at construction).
        InvalidIdentifierError: A table name is invalid, or two of them are equal.
    """

    setting_sentinels: ClassVar[Mapping[str, tuple[float, ...]]] = {"pool_recycle": (-1,)}
    """Negative values the configuration accepts: ``pool_recycle=-1`` (never recycle)."""

    def __init__(
        self,
        dsn: str = DEFAULT_DSN,
        *,
        queue_table: str = "task_queue",
        dead_letter_table: str = "dead_letter_queue",
        migrations_table: str | None = None,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        auto_migrate: bool = True,
        max_payload_size: int | None = None,
        poll_interval_min: float = 0.01,
        poll_interval_max: float = 1.0,
        pool_recycle: float = 3600.0,
    ) -> None:
        if not 0 <= min_pool_size <= max_pool_size or max_pool_size < 1:
            raise ConfigurationError(
                f"need 0 <= min_pool_size <= max_pool_size and max_pool_size >= 1, got "
                f"{min_pool_size} and {max_pool_size}"
            )
        if not 0 < poll_interval_min <= poll_interval_max:
            raise ConfigurationError("need 0 < poll_interval_min <= poll_interval_max")
        if max_payload_size is not None and max_payload_size < 1:
            raise ConfigurationError("max_payload_size must be positive")
        if pool_recycle < 0 and pool_recycle != -1:
            raise ConfigurationError(
                f"pool_recycle must be 0 or more seconds, or -1 (never), got {pool_recycle!r}"
            )
        self._dsn = parse_dsn(dsn)
        self._tables = TableNames.build(queue_table, dead_letter_table, migrations_table)
        self._sql = Statements(self._tables)
        self._min_pool_size = min_pool_size
        self._max_pool_size = max_pool_size
        self._auto_migrate = auto_migrate
        self._max_payload_size = max_payload_size
        self._pool_recycle = pool_recycle
        self._idle = IdleBackoff(poll_interval_min, poll_interval_max)
        # A take cancelled mid-statement finishes (no rows left locked), then gives back.
        self._given_back = GivenBack(self.release)
        self._pool: Any = None
        self._same_database = same_database()
        self._connect_lock: asyncio.Lock | None = None
        self._server: ServerInfo | None = None
        self._probe_first = True  # the last dequeue found nothing (or none ran yet)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the pool belongs to

    def __repr__(self) -> str:
        return f"MySQLDriver(dsn={self._dsn.redacted!r}, queue_table={self._tables.raw_queue!r})"

    # -- connection management ------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the pool is open."""
        return self._pool is not None

    @property
    def queue_table(self) -> str:
        """Name of the queue table."""
        return self._tables.raw_queue

    @property
    def dead_letter_table(self) -> str:
        """Name of the dead-letter table."""
        return self._tables.raw_dead_letter

    @property
    def server(self) -> ServerInfo | None:
        """What `connect` learnt about the server (None before the first connect)."""
        return self._server

    async def connect(self) -> None:
        """Open the pool, check the server and the schema (idempotent).

        Raises:
            UnsupportedServerError: The server has no ``SKIP LOCKED``.
            ConfigurationError: TLS was required but not offered, or ``max_allowed_packet``
                cannot carry an explicitly configured ``max_payload_size``.
            SchemaNotInitializedError: ``auto_migrate`` is off and migrations are pending.
        """
        await self._open(check_schema=True)

    def _forget_other_loop(self) -> None:
        """Drop a pool opened on another event loop (say, an earlier ``asyncio.run``).

        Its connections belong to that loop and cannot be used or closed gracefully here;
        their sockets are closed and a new pool opens on the running loop.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._pool is not None:
            abandon(self._pool)
            self._pool = None
        self._loop = loop
        self._connect_lock = None
        self._idle = IdleBackoff(self._idle.min_interval, self._idle.max_interval)

    async def _open(self, *, check_schema: bool) -> Any:
        self._forget_other_loop()
        if self._pool is not None:
            return self._pool
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self.connected:  # another task connected while we waited for the lock
                return self._pool
            try:
                pool = await create_pool(
                    self._dsn,
                    min_size=self._min_pool_size,
                    max_size=self._max_pool_size,
                    recycle=self._pool_recycle,
                )
            except Exception as exc:  # the client's error names neither the server nor the setting
                exc.add_note(
                    f"while connecting to MySQL at {self._dsn.redacted} (the mysql.dsn setting, "
                    "ASYNCTASQ_MYSQL_DSN)"
                )
                raise
            try:
                async with pool.acquire() as conn:
                    self._server = await check_server(
                        conn,
                        tls_requested=self._dsn.ssl_mode is not SSLMode.DISABLED,
                        require_tls=self._dsn.ssl_mode not in (SSLMode.DISABLED, SSLMode.PREFERRED),
                        max_payload_size=self._max_payload_size,
                    )
                    if self._auto_migrate:
                        await apply_migrations(conn, self._dsn.database, self._tables)
                    elif check_schema and await pending_versions(conn, self._tables):
                        raise SchemaNotInitializedError(f"the queue tables of {self!r}")
            except BaseException:
                await close_pool(pool)
                raise
            self._pool = pool
            logger.info("connected to %s (%s)", self._dsn.redacted, self._server.version)
            return pool

    async def close(self) -> None:
        """Close every connection; leased rows stay leased until their deadline passes."""
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._given_back.settle()  # cancelled takes finish and give back first
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._loop is not asyncio.get_running_loop():
            abandon(pool)  # opened on another loop: nothing to await here
            return
        await close_pool(pool)

    async def init_schema(self) -> list[int]:
        """Create or upgrade the tables (idempotent; safe from several processes at once).

        Returns:
            The migration versions this call applied.
        """
        pool = await self._open(check_schema=False)
        async with pool.acquire() as conn:
            return await apply_migrations(conn, self._dsn.database, self._tables)

    def migration_sql(self) -> str:
        """The schema script `init_schema` would run, without connecting (``--dry-run``)."""
        return migration_sql(self._tables)

    async def _where(self) -> Where:
        """Where this driver's own connections queue (see `caller_connection.where`)."""
        async with (await self._ready()).acquire() as conn:
            return await where(conn)

    async def _ready(self) -> Any:
        pool = self._pool
        if pool is None or self._loop is not asyncio.get_running_loop():
            pool = await self._open(check_schema=True)
        return pool

    async def _execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        return await execute(await self._ready(), sql, params)

    async def _fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
        return await fetchall(await self._ready(), sql, params)

    def _insert_statements(
        self, connection: Any, messages: Sequence[OutgoingMessage]
    ) -> list[bytes]:
        assert self._server is not None
        return self._sql.insert_statements(
            connection,
            messages,
            max_allowed_packet=self._server.max_allowed_packet,
            max_payload_size=self._max_payload_size,
        )

    # -- enqueue ---------------------------------------------------------------------------

    async def enqueue(self, message: OutgoingMessage) -> None:
        """Store one message, ready after ``message.delay`` seconds (one round-trip)."""
        await self.enqueue_many([message])

    async def enqueue_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store several messages atomically, in as few multi-row INSERTs as fit a packet.

        Raises:
            PayloadTooLargeError: A payload cannot fit under ``max_allowed_packet``; nothing
                was stored.
        """
        if not messages:
            return
        pool = await self._ready()
        async with pool.acquire() as conn:
            statements = self._insert_statements(conn, messages)
            async with conn.cursor() as cursor:
                if len(statements) == 1:
                    await cursor.execute(statements[0])
                else:
                    await conn.begin()
                    try:
                        for statement in statements:
                            await cursor.execute(statement)
                    except BaseException:
                        await rollback_quietly(conn)
                        raise
                    await conn.commit()
        self._idle.notify()

    async def enqueue_with_connection(
        self,
        connection: object,
        messages: Sequence[OutgoingMessage],
        *,
        statuses: Sequence[StatusWrite] = (),
    ) -> None:
        """Insert messages through the caller's connection, inside the caller's transaction.

        Nothing is committed here: the messages exist once the caller commits, and vanish
        if it rolls back. The connection must reach the database holding the queue table.

        Args:
            connection: An open `aiomysql.Connection`, usually inside ``BEGIN``, or a
                SQLAlchemy ``AsyncSession`` or ``AsyncConnection`` on aiomysql (see
                `caller_connection`).
            messages: The messages to store.
            statuses: Status records of tracked tasks among them, written first in the
                same transaction: they exist if and only if the messages do.

        Raises:
            TypeError: `connection` is none of those (the message says what to pass).
            ValueError: `connection` is on another database or server than the driver's.
        """
        client = await caller_connection(connection)
        if not messages:
            return
        await self._ready()  # learns max_allowed_packet and makes sure the tables exist
        await self._same_database.check(client, self._where)
        statements = self._status_statements(client, statuses) if statuses else []
        statements += self._insert_statements(client, messages)
        await _all_or_nothing(client, statements)
        # Wakes local consumers early; until the caller commits they find nothing and back
        # off from the shortest interval, so they see the rows soon after the commit.
        self._idle.notify()

    # -- dequeue ---------------------------------------------------------------------------

    async def dequeue(self, queues: Sequence[str], *, limit: int, wait: float) -> list[Delivery]:
        """Lease up to `limit` ready messages, earlier queues first.

        When nothing is ready, polls with backoff (`poll_interval_min` doubling to
        `poll_interval_max`), waking at once when this driver enqueues and never sleeping
        past the next delayed row's due time or the end of `wait`.
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        names = list(dict.fromkeys(queues))
        if not names:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait, 0.0)
        while True:
            deliveries, next_due = await self._given_back.run(self._take(names, limit))
            if deliveries:
                self._idle.found_work()
                return deliveries
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            if next_due is not None:
                # The floor keeps a due row that another consumer's dequeue holds locked (for
                # a few ms) from making us spin; the slack lets the server clock pass it.
                remaining = min(remaining, max(next_due + _DUE_SLACK, _DUE_SLACK))
            if await self._idle.sleep(remaining):
                self._probe_first = False  # woken by a local enqueue: take at once

    async def _take(self, queues: list[str], limit: int) -> tuple[list[Delivery], float | None]:
        """Lease up to `limit` rows; when none, also seconds until the next due row.

        Busy: two round-trips, ``START TRANSACTION; SELECT ... FOR UPDATE SKIP LOCKED`` and
        ``UPDATE ...; COMMIT`` (one more per extra queue the first does not fill). Idle (the
        last take found nothing): one non-locking read of the earliest due time first, so an
        empty poll costs one round-trip and no transaction.
        """
        pool = await self._ready()
        async with pool.acquire() as conn, conn.cursor() as cursor:
            if self._probe_first:
                await cursor.execute(self._sql.next_due(len(queues)), queues)
                (due_micros,) = await cursor.fetchone()
                if due_micros is None or due_micros > 0:
                    return [], None if due_micros is None else int(due_micros) / 1_000_000
            taken: list[tuple[str, Any]] = []
            try:
                for index, queue in enumerate(queues):
                    if index == 0:
                        await cursor.execute(
                            "START TRANSACTION; " + self._sql.select_ready,
                            (queue, limit, queue, limit),
                        )
                        await cursor.nextset()
                    else:
                        want = limit - len(taken)
                        await cursor.execute(self._sql.select_ready, (queue, want, queue, want))
                    rows = await cursor.fetchall()
                    taken.extend((queue, row) for row in rows[: limit - len(taken)])
                    if len(taken) >= limit:
                        break
                if not taken:
                    await cursor.execute("COMMIT")
                    self._probe_first = True
                    # Due rows were there but locked by another consumer: look again soon.
                    return [], self._idle.min_interval
                token = secrets.randbits(63)
                ids = [row[0] for _, row in taken]
                await cursor.execute(
                    self._sql.lease_prefix + placeholders(len(ids)) + "; COMMIT", [token, *ids]
                )
                await cursor.nextset()
            except BaseException:
                await rollback_quietly(conn)
                raise
        self._probe_first = False
        return [
            Delivery(
                task_id=row[1],
                queue=queue,
                payload=bytes(row[2]),
                attempts=int(row[3]),
                receipt=Lease(int(row[0]), token),
                visibility_timeout=float(row[4]),
            )
            for queue, row in taken
        ], None

    # -- lease operations ------------------------------------------------------------------

    async def _for_leases(self, prefix: str, deliveries: Sequence[Delivery], *extra: Any) -> None:
        for chunk in _chunks(deliveries):
            leases = [d.receipt for d in chunk]
            await self._execute(
                prefix + lease_condition(len(leases)), [*extra, *lease_params(leases)]
            )

    async def store_result(self, task_id: str, result: bytes, ttl: float) -> None:
        """Keep a task's outcome for `ttl` seconds (replacing an earlier one); drop up to
        100 expired results on the way."""
        pool = await self._ready()
        async with pool.acquire() as conn, conn.cursor() as cursor:
            await cursor.execute(self._sql.delete_expired_results)
            await cursor.execute(self._sql.store_result(conn, task_id, result, ttl))

    async def fetch_result(self, task_id: str, wait: float) -> bytes | None:
        """A task's kept outcome, checking with a backoff (10 ms to 0.25 s) for up to
        `wait` seconds: one primary-key lookup per check."""
        deadline = time.monotonic() + max(wait, 0.0)
        pause = 0.01
        while True:
            rows = await self._fetchall(self._sql.fetch_result, (task_id,))
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return bytes(rows[0][0]) if rows else None
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.25)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Delete finished messages (a lease that was lost to another consumer is kept)."""
        await self._for_leases(self._sql.ack_prefix, deliveries)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Make leased messages ready now and un-count this delivery."""
        await self._for_leases(self._sql.release_prefix, deliveries)
        if deliveries:
            self._idle.notify()

    async def extend(self, deliveries: Sequence[Delivery], visibility_timeout: float) -> None:
        """Move each held lease's deadline to `visibility_timeout` seconds from now."""
        await self._for_leases(self._sql.extend_prefix, deliveries, micros(visibility_timeout))

    async def retry(self, delivery: Delivery, *, delay: float) -> None:
        """End the lease and make the message ready after `delay` seconds (one statement)."""
        lease: Lease = delivery.receipt
        await self._execute(self._sql.retry, (micros(delay), lease.row_id, lease.token))
        self._idle.notify()

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        """Atomically move the message with its failure to the dead-letter table (payload,
        task id and attempts kept); does nothing when the lease is no longer held."""
        lease: Lease = delivery.receipt
        await dead_letters.move_to_dead_letters(
            await self._ready(), self._sql, lease.row_id, lease.token, failure
        )

    # -- inspection ------------------------------------------------------------------------

    async def queue_names(self) -> list[str]:
        """Queues with waiting, leased or dead messages, sorted."""
        return sorted(row[0] for row in await self._fetchall(self._sql.queue_names))

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Ready, delayed, in-flight and dead counts per queue (an expired lease is ready)."""
        names = list(queues)
        if not names:
            return []
        in_list = placeholders(len(names))
        counts = {
            row[0]: (int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))
            for row in await self._fetchall(
                self._sql.stats_prefix + in_list + " GROUP BY `queue`", names
            )
        }
        dead = {
            row[0]: int(row[1])
            for row in await self._fetchall(
                self._sql.dead_stats_prefix + in_list + " GROUP BY `queue`", names
            )
        }
        result = []
        for name in names:
            ready, delayed, in_flight = counts.get(name, (0, 0, 0))
            result.append(
                QueueStats(
                    queue=name,
                    ready=ready,
                    delayed=delayed,
                    in_flight=in_flight,
                    dead=dead.get(name, 0),
                )
            )
        return result

    async def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of `queue` (leased ones stay)."""
        return await self._execute(self._sql.purge, (queue,))

    # -- dead letters ----------------------------------------------------------------------

    async def list_dead_letters(
        self,
        *,
        queue: str | None = None,
        task_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, filtered by queue and/or task ids."""
        return await dead_letters.list_dead_letters(
            await self._ready(), self._sql, queue, task_ids, limit
        )

    async def retry_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Move dead letters back to their queues, ready now, attempts reset to 0.

        With neither filter, every dead letter is retried. Returns how many moved.
        """
        moved = await dead_letters.retry_dead_letters(
            await self._ready(), self._sql, queue, task_ids
        )
        if moved:
            self._idle.notify()
        return moved

    async def purge_dead_letters(
        self, *, queue: str | None = None, task_ids: Sequence[str] | None = None
    ) -> int:
        """Delete dead letters (all of them with neither filter). Returns how many."""
        return await dead_letters.purge_dead_letters(
            await self._ready(), self._sql, queue, task_ids
        )


__all__ = ["DEFAULT_DSN", "Lease", "MySQLDriver"]
