"""Task status records, append-only logs and worker records: `MySQLDriver`'s `StatusStore`,
`EventLog` and `WorkerRegistry` capabilities.

The tables (migration 3, see `asynctasq_mysql.schema`) are named after the queue table. All
times come from the server clock, like the queue's. Expired rows are never returned; a
driver deletes them in batches of `TRIM_BATCH` after its own writes, at most every
`TRIM_INTERVAL` seconds per table unless a batch came back full (then at the next write,
until the backlog is gone), so housekeeping costs no extra round trip on most writes and no
sweeper has to run.

MySQL cannot push, so a waiting `read_log` polls with the backoff of
`asynctasq.drivers.sql.polled_logs`; an append through the same driver wakes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from asynctasq.drivers.base import MAX_WORKER_RECORDS, StatusWrite
from asynctasq.drivers.sql.polled_logs import (
    ANY_SIZE,
    LOG_POLL_MAX,
    LOG_POLL_MIN,
    WaitForAppend,
    log_position,
    poll_log,
)
from asynctasq_mysql.errors import PayloadTooLargeError
from asynctasq_mysql.pool import execute, fetchall, lock_retries, rollback_quietly
from asynctasq_mysql.schema import TableNames
from asynctasq_mysql.server import ServerInfo, is_transient_lock_error
from asynctasq_mysql.sql import bytes_literal, micros

logger = logging.getLogger("asynctasq_mysql")

TRIM_BATCH = 500
"""Most expired rows one trim deletes: a backlog (a day of records expiring at once) is
spread over later writes instead of holding row locks for long."""
TRIM_INTERVAL = 5.0
"""Seconds between a driver's trims of one table while there is no backlog."""
MAX_TTL = 100 * 365 * 86400.0
"""Longest TTL or retention stored (DATETIME ends at year 9999; ``inf`` means this)."""

_NOW = "UTC_TIMESTAMP(6)"
_ROWS_PER_STATEMENT = 1000
_STATEMENT_OVERHEAD = 1024  # bytes kept free under the packet limit for the SQL around rows


class LifecycleStatements:
    """SQL text for the lifecycle tables of one table set.

    Args:
        tables: The validated, backquoted table names.
    """

    def __init__(self, tables: TableNames) -> None:
        s, lg, heads, w = tables.statuses, tables.logs, tables.log_heads, tables.workers
        self.statuses, self.logs, self.workers = s, lg, w
        self.replace_status_prefix = (
            f"REPLACE INTO {s} (`task_id`, `queue`, `state`, `record`, `expires_at`) VALUES "
        )
        self.read_status = (
            f"SELECT `record` FROM {s} WHERE `task_id` = %s AND `expires_at` > {_NOW}"
        )
        # Taken first in an append's transaction and held until COMMIT: see schema.py.
        self.lock_log = (
            f"INSERT INTO {heads} (`log`, `appends`) VALUES (%s, 1) "
            "ON DUPLICATE KEY UPDATE `appends` = `appends` + 1"
        )
        self.append_prefix = f"INSERT INTO {lg} (`log`, `entry`, `expires_at`) VALUES "
        self.read_log = (
            f"SELECT `id`, CASE WHEN OCTET_LENGTH(`entry`) <= %s THEN `entry` END "
            f"FROM {lg} WHERE `log` = %s AND `id` > %s "
            f"AND `expires_at` > {_NOW} ORDER BY `id` LIMIT %s"
        )
        self.log_tail = f"SELECT COALESCE(MAX(`id`), 0) FROM {lg} WHERE `log` = %s"
        # REPLACE, not ON DUPLICATE KEY UPDATE ... VALUES(), which MySQL 8 deprecates.
        self.heartbeat_prefix = f"REPLACE INTO {w} (`worker_id`, `info`, `expires_at`) VALUES "
        self.remove_worker = f"DELETE FROM {w} WHERE `worker_id` = %s"
        self.list_workers = (
            f"SELECT `info` FROM {w} WHERE `expires_at` > {_NOW} ORDER BY `worker_id` "
            f"LIMIT {MAX_WORKER_RECORDS:d}"
        )
        self.trims = {
            table: f"DELETE FROM {table} WHERE `expires_at` <= {_NOW} LIMIT {TRIM_BATCH:d}"
            for table in (s, lg, w)
        }

    def list_statuses(self, *, queue: bool, state: bool) -> str:
        """Live records newest first, filtered on queue and/or state (``%s``) when asked."""
        clauses = [f"`expires_at` > {_NOW}"]
        if queue:
            clauses.append("`queue` = %s")
        if state:
            clauses.append("`state` = %s")
        return (
            f"SELECT `record` FROM {self.statuses} WHERE {' AND '.join(clauses)} "
            "ORDER BY `seq` DESC LIMIT %s"
        )


def _expiry(seconds: float) -> str:
    return f"{_NOW} + INTERVAL {micros(min(seconds, MAX_TTL))} MICROSECOND"


def _row(connection: Any, texts: Sequence[str], blob: bytes, seconds: float) -> bytes:
    """``(text, ..., blob, expiry)``, every value escaped for `connection`."""
    encoding = connection.encoding
    head = "(" + "".join(f"{connection.escape(text)}, " for text in texts)
    return (
        head.encode(encoding)
        + bytes_literal(connection, bytes(blob))
        + f", {_expiry(seconds)})".encode(encoding)
    )


def _statements(prefix: str, rows: Sequence[bytes], budget: int) -> list[bytes]:
    """Multi-row statements of `rows`, each under `budget` bytes.

    Raises:
        PayloadTooLargeError: One row alone does not fit (nothing was sent).
    """
    head = prefix.encode()
    statements: list[bytes] = []
    batch: list[bytes] = []
    size = len(head)
    for row in rows:
        if len(head) + len(row) > budget:
            raise PayloadTooLargeError(
                f"a record of {len(row)} bytes of SQL does not fit the server's "
                f"max_allowed_packet: raise it or store a smaller record"
            )
        if batch and (size + len(row) + 2 > budget or len(batch) >= _ROWS_PER_STATEMENT):
            statements.append(head + b", ".join(batch))
            batch, size = [], len(head)
        batch.append(row)
        size += len(row) + 2
    if batch:
        statements.append(head + b", ".join(batch))
    return statements


async def _run_atomically(connection: Any, statements: list[bytes], budget: int) -> None:
    """Run `statements` as one transaction (one round trip when they fit one packet)."""
    async with connection.cursor() as cursor:
        if len(statements) == 1:
            await cursor.execute(statements[0])
            return
        script = [b"START TRANSACTION", *statements, b"COMMIT"]
        try:
            if sum(len(s) + 2 for s in script) <= budget:
                await cursor.execute(b"; ".join(script))
                for _ in range(len(script) - 1):
                    await cursor.nextset()
            else:
                for statement in script:
                    await cursor.execute(statement)
        except BaseException:
            await rollback_quietly(connection)
            raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Appends:
    """Wakes the readers waiting on this driver when it appends (once per event loop).

    A reader arms *before* it queries, so an append that commits between its query and its
    wait still wakes it.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self) -> WaitForAppend:
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._event, self._loop = asyncio.Event(), loop
        event = self._event

        async def wait_for_append(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await event.wait()

        return wait_for_append

    def notify(self) -> None:
        event, self._event = self._event, None
        # An event of an earlier loop has no live waiters: setting it would touch that loop.
        if event is not None and self._loop is _running_loop():
            event.set()


class MySQLLifecycle:
    """The lifecycle capabilities, mixed into `MySQLDriver` (which provides `_ready`)."""

    _tables: TableNames
    _server: ServerInfo | None
    _pool: Any

    async def _ready(self) -> Any:
        raise NotImplementedError  # pragma: no cover  (MySQLDriver's)

    @functools.cached_property
    def _lifecycle_sql(self) -> LifecycleStatements:
        return LifecycleStatements(self._tables)

    @functools.cached_property
    def _trim_due(self) -> dict[str, float]:
        return {}

    @functools.cached_property
    def _appends(self) -> _Appends:
        return _Appends()

    def _budget(self) -> int:
        assert self._server is not None  # known once connected
        return self._server.max_allowed_packet - _STATEMENT_OVERHEAD

    async def _write(self, build: Callable[[Any], list[bytes]]) -> None:
        """Run the statements `build(connection)` makes as one transaction; retried after
        a deadlock or lock wait timeout (which rolled it back)."""
        pool = await self._ready()
        retries = lock_retries()
        for attempt in retries:
            try:
                async with pool.acquire() as connection:
                    await _run_atomically(connection, build(connection), self._budget())
                return
            except Exception as exc:
                if attempt + 1 == len(retries) or not is_transient_lock_error(exc):
                    raise

    async def _trim(self, table: str) -> None:
        """Delete a batch of expired rows of `table` when due.

        Never raises: the write it follows has succeeded, and a caller told otherwise could
        retry it (a log append would then be stored twice).
        """
        now = time.monotonic()
        if now < self._trim_due.get(table, 0.0):
            return
        self._trim_due[table] = now + TRIM_INTERVAL  # concurrent writers skip meanwhile
        try:
            deleted = await execute(await self._ready(), self._lifecycle_sql.trims[table])
        except Exception as exc:
            logger.warning("deleting expired rows of %s failed: %s", table, exc)
            return
        if deleted >= TRIM_BATCH:
            self._trim_due[table] = 0.0  # a backlog: go on at the next write

    # -- StatusStore -----------------------------------------------------------------------

    async def write_statuses(self, writes: Sequence[StatusWrite]) -> None:
        """Store task status records in one statement (one transaction when they need
        several); of two writes for one id the later wins, and each write makes its record
        the most recent (a ``REPLACE`` takes a new ``seq``)."""
        if not writes:
            return
        await self._write(lambda connection: self._status_statements(connection, writes))
        await self._trim(self._lifecycle_sql.statuses)

    def _status_statements(self, connection: Any, writes: Sequence[StatusWrite]) -> list[bytes]:
        """The ``REPLACE`` statements of `writes`, escaped for `connection`."""
        latest: dict[str, StatusWrite] = {}
        for write in writes:
            latest.pop(write.task_id, None)  # re-inserted: the position of its last write
            latest[write.task_id] = write
        rows = [
            _row(connection, (w.task_id, w.queue, w.state), w.record, w.ttl)
            for w in latest.values()
        ]
        return _statements(self._lifecycle_sql.replace_status_prefix, rows, self._budget())

    async def read_status(self, task_id: str) -> bytes | None:
        """The status record of `task_id`, or None (never tracked, or expired)."""
        rows = await fetchall(await self._ready(), self._lifecycle_sql.read_status, (task_id,))
        return bytes(rows[0][0]) if rows else None

    async def list_statuses(
        self, *, queue: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[bytes]:
        """Live status records, most recently written first, filtered by queue and/or
        state."""
        query = self._lifecycle_sql.list_statuses(queue=queue is not None, state=state is not None)
        params = [p for p in (queue, state) if p is not None]
        rows = await fetchall(await self._ready(), query, [*params, max(limit, 0)])
        return [bytes(row[0]) for row in rows]

    # -- EventLog --------------------------------------------------------------------------

    async def append_log(self, log: str, entries: Sequence[bytes], retention: float) -> None:
        """Append entries to `log`, kept `retention` seconds, in one transaction and round
        trip; appends to one log are serialized (see `asynctasq_mysql.schema`)."""
        if not entries:
            return
        sql = self._lifecycle_sql

        def build(connection: Any) -> list[bytes]:
            lock = (sql.lock_log % connection.escape(log)).encode(connection.encoding)
            rows = [_row(connection, (log,), entry, retention) for entry in entries]
            return [lock, *_statements(sql.append_prefix, rows, self._budget())]

        await self._write(build)
        self._appends.notify()
        await self._trim(sql.logs)

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

        When there are none, waits up to `wait` seconds: woken by an append through this
        driver, otherwise polling (`LOG_POLL_MIN` doubling to `LOG_POLL_MAX`).

        Raises:
            ValueError: `limit` < 1, or `cursor` is not one this driver returned.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        after = log_position(cursor, "MySQLDriver")
        largest = max_entry if max_entry is not None else ANY_SIZE
        pool = await self._ready()
        rows = await poll_log(
            lambda: fetchall(pool, self._lifecycle_sql.read_log, (largest, log, after, limit)),
            self._appends.arm,
            wait=wait,
            still_open=lambda: self._pool is pool,  # closed meanwhile: stop waiting
        )
        if not rows:
            return [], cursor or "0"
        return [bytes(row[1]) for row in rows if row[1] is not None], str(int(rows[-1][0]))

    async def log_tail(self, log: str) -> str:
        """A cursor after the last entry of `log` (``"0"`` when it has none)."""
        rows = await fetchall(await self._ready(), self._lifecycle_sql.log_tail, (log,))
        return str(int(rows[0][0]))

    # -- WorkerRegistry --------------------------------------------------------------------

    async def heartbeat_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        """Store or renew worker `worker_id`'s record for `ttl` seconds."""
        sql = self._lifecycle_sql

        def build(connection: Any) -> list[bytes]:
            row = _row(connection, (worker_id,), info, ttl)
            return _statements(sql.heartbeat_prefix, [row], self._budget())

        await self._write(build)
        await self._trim(sql.workers)

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        await execute(await self._ready(), self._lifecycle_sql.remove_worker, (worker_id,))

    async def list_workers(self) -> list[bytes]:
        """The records of the workers whose record has not expired, by worker id."""
        rows = await fetchall(await self._ready(), self._lifecycle_sql.list_workers)
        return [bytes(row[0]) for row in rows]


__all__ = [
    "LOG_POLL_MAX",
    "LOG_POLL_MIN",
    "MAX_TTL",
    "TRIM_BATCH",
    "TRIM_INTERVAL",
    "LifecycleStatements",
    "MySQLLifecycle",
]
