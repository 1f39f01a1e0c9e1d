"""The SQL the driver runs, built once per table set from validated identifiers.

Values always travel as escaped literals or ``%s`` parameters, never spliced from input.
Payload bytes are escaped here rather than by aiomysql, whose bytes escaping ignores the
server's ``NO_BACKSLASH_ESCAPES`` mode (and would then corrupt payloads) and is slow; the
enqueue INSERT is built as bytes, so its size on the wire is known exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asynctasq.core.options import MAX_SECONDS
from asynctasq.drivers.base import MALFORMED_LEASE, MAX_PRIORITY, OutgoingMessage
from asynctasq_mysql.errors import PayloadTooLargeError
from asynctasq_mysql.schema import TableNames

_NO_BACKSLASH_ESCAPES = 512  # SERVER_STATUS_NO_BACKSLASH_ESCAPES in the MySQL protocol
# Backslash first, so the backslashes the later replacements add are not doubled again.
_BACKSLASH_ESCAPES = (
    (b"\\", b"\\\\"),
    (b"\0", b"\\0"),
    (b"\n", b"\\n"),
    (b"\r", b"\\r"),
    (b"\x1a", b"\\Z"),
    (b'"', b'\\"'),
    (b"'", b"\\'"),
)
_ROWS_PER_STATEMENT = 1000  # most rows in one multi-row INSERT
_STATEMENT_OVERHEAD = 1024  # bytes kept free under the packet limit for the SQL around rows
_MAX_TEXT = 1 << 20  # longest error message / traceback kept, in characters
_NOW = "UTC_TIMESTAMP(6)"
# A lease in whole microseconds, the unit DATETIME(6) arithmetic takes. A row written behind
# the driver's back must not fail the statement (and with it every queue's dequeue): a
# visibility timeout no dispatch could set overflows the DATETIME, so it gets a short lease,
# in which the worker dead-letters the row.
_LEASE_SECONDS = (
    f"IF(`visibility_timeout` > 0 AND `visibility_timeout` <= {MAX_SECONDS:.0f}, "
    f"`visibility_timeout`, {MALFORMED_LEASE:.0f})"
)
_LEASE_END = f"{_NOW} + INTERVAL ROUND({_LEASE_SECONDS} * 1000000) MICROSECOND"
_MAX_COUNT = 4294967295  # INT UNSIGNED: a count there stays (dead-lettered as delivered too often)


def bytes_literal(connection: Any, value: bytes) -> bytes:
    """Render bytes as a ``_binary'...'`` SQL literal for this connection's escaping mode.

    Works on bytes with C-speed replacements (a 16 MiB payload takes milliseconds, where
    aiomysql's per-character translation takes seconds).
    """
    if connection.server_status & _NO_BACKSLASH_ESCAPES:
        return b"_binary'" + value.replace(b"'", b"''") + b"'"
    for raw, escaped in _BACKSLASH_ESCAPES:
        if raw in value:
            value = value.replace(raw, escaped)
    return b"_binary'" + value + b"'"


def micros(seconds: float) -> int:
    """Seconds as whole microseconds, never negative."""
    return max(0, round(seconds * 1_000_000))


class Statements:
    """SQL text for one set of tables. Placeholders use aiomysql's ``%s`` style.

    Args:
        tables: The validated, backquoted table names.
    """

    def __init__(self, tables: TableNames) -> None:
        q, dl = tables.queue, tables.dead_letter
        self.tables = tables
        self.insert_prefix = (
            f"INSERT INTO {q} (`task_id`, `queue`, `payload`, `available_at`, "
            "`visibility_timeout`, `enqueued_at`) VALUES "
        )
        # Rows of priority 0 are inserted without naming the column (its default), so
        # dispatching keeps working on tables not migrated to version 5 yet.
        self.insert_ranked_prefix = (
            f"INSERT INTO {q} (`task_id`, `queue`, `payload`, `available_at`, "
            "`visibility_timeout`, `enqueued_at`, `priority`) VALUES "
        )
        # Priorities 1-9 first, from ix_priority (queue, priority, available_at): one probe
        # of an empty range when nobody sets one. Then FIFO by due time; InnoDB appends the
        # primary key to the secondary index, so that ORDER BY walks ix_dequeue (queue,
        # available_at, id) without a sort and stops at LIMIT. The caller keeps the first
        # `limit` rows; the others' locks end with the transaction.
        columns = "`id`, `task_id`, `payload`, `attempts`, `visibility_timeout`"
        self.select_ready = (
            f"(SELECT {columns} FROM {q} "
            f"WHERE `queue` = %s AND `priority` > 0 AND `available_at` <= {_NOW} "
            "ORDER BY `priority` DESC, `available_at`, `id` LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UNION ALL (SELECT {columns} FROM {q} "
            f"WHERE `queue` = %s AND `available_at` <= {_NOW} AND `priority` = 0 "
            "ORDER BY `available_at`, `id` LIMIT %s FOR UPDATE SKIP LOCKED)"
        )
        self.lease_prefix = (
            f"UPDATE {q} SET `attempts` = LEAST(`attempts`, {_MAX_COUNT - 1}) + 1, "
            "`lease_token` = %s, "
            f"`available_at` = {_LEASE_END} WHERE `id` IN "
        )
        self.next_due_part = f"SELECT MIN(`available_at`) AS `due` FROM {q} WHERE `queue` = %s"
        r = tables.results
        self.delete_expired_results = f"DELETE FROM {r} WHERE `expires_at` <= {_NOW} LIMIT 100"
        self._store_result_prefix = f"INSERT INTO {r} (`task_id`, `result`, `expires_at`) VALUES ("
        self._store_result_suffix = (
            " MICROSECOND) ON DUPLICATE KEY UPDATE `result` = VALUES(`result`), "
            "`expires_at` = VALUES(`expires_at`)"
        )
        self.fetch_result = (
            f"SELECT `result` FROM {r} WHERE `task_id` = %s AND `expires_at` > {_NOW}"
        )
        self.ack_prefix = f"DELETE FROM {q} WHERE "
        self.release_prefix = (
            f"UPDATE {q} SET `available_at` = {_NOW}, `lease_token` = NULL, "
            "`attempts` = GREATEST(`attempts`, 1) - 1 WHERE "
        )
        self.extend_prefix = (
            f"UPDATE {q} SET `available_at` = {_NOW} + INTERVAL %s MICROSECOND WHERE "
        )
        self.retry = (
            f"UPDATE {q} SET `available_at` = {_NOW} + INTERVAL %s MICROSECOND, "
            "`lease_token` = NULL WHERE `id` = %s AND `lease_token` = %s"
        )
        self.dead_letter_copy = (
            f"INSERT INTO {dl} (`task_id`, `queue`, `payload`, `visibility_timeout`, "
            "`attempts`, `exception_type`, `error_message`, `traceback`, `failed_at`, "
            "`priority`) "
            "SELECT `task_id`, `queue`, `payload`, `visibility_timeout`, `attempts`, "
            f"%s, %s, %s, {_NOW}, `priority` FROM {q} WHERE `id` = %s AND `lease_token` = %s"
        )
        self.dead_letter_delete = f"DELETE FROM {q} WHERE `id` = %s AND `lease_token` = %s"
        self.queue_names = (
            f"SELECT DISTINCT `queue` FROM {q} UNION SELECT DISTINCT `queue` FROM {dl}"
        )
        self.stats_prefix = (
            f"SELECT `queue`, SUM(`available_at` <= {_NOW}), "
            f"SUM(`lease_token` IS NULL AND `available_at` > {_NOW}), "
            f"SUM(`lease_token` IS NOT NULL AND `available_at` > {_NOW}) "
            f"FROM {q} WHERE `queue` IN "
        )
        self.dead_stats_prefix = f"SELECT `queue`, COUNT(*) FROM {dl} WHERE `queue` IN "
        self.purge = (
            f"DELETE FROM {q} WHERE `queue` = %s "
            f"AND (`lease_token` IS NULL OR `available_at` <= {_NOW})"
        )
        self.dead_columns = (
            "`id`, `task_id`, `queue`, `payload`, `exception_type`, `error_message`, "
            "`traceback`, `attempts`, `failed_at`"
        )
        self.dead_select = f"SELECT {self.dead_columns} FROM {dl}"
        self.dead_ids_for_update = f"SELECT `id` FROM {dl}"
        self.dead_requeue_prefix = (
            f"INSERT INTO {q} (`task_id`, `queue`, `payload`, `available_at`, "
            "`visibility_timeout`, `attempts`, `enqueued_at`, `priority`) "
            f"SELECT `task_id`, `queue`, `payload`, {_NOW}, `visibility_timeout`, 0, {_NOW}, "
            f"`priority` FROM {dl} WHERE `id` IN "
        )
        self.dead_delete_prefix = f"DELETE FROM {dl} WHERE `id` IN "

    def store_result(self, connection: Any, task_id: str, result: bytes, ttl: float) -> bytes:
        """The statement keeping (or replacing) one task result, escaped for `connection`."""
        encoding = connection.encoding
        head = f"{self._store_result_prefix}{connection.escape(task_id)}, "
        tail = f", {_NOW} + INTERVAL {micros(ttl)}{self._store_result_suffix}"
        return head.encode(encoding) + bytes_literal(connection, result) + tail.encode(encoding)

    def insert_values(
        self, connection: Any, message: OutgoingMessage, *, ranked: bool = False
    ) -> bytes:
        """One ``(...)`` row of the enqueue INSERT, every value escaped for `connection`
        (with the priority when `ranked`: the statement names that column)."""
        encoding = connection.encoding
        head = f"({connection.escape(message.task_id)}, {connection.escape(message.queue)}, "
        priority = ""
        if ranked:
            if type(message.priority) is not int or not 0 <= message.priority <= MAX_PRIORITY:
                raise ValueError(
                    f"priority must be a whole number from 0 to {MAX_PRIORITY}, got "
                    f"{message.priority!r} (task {message.task_id})"
                )
            priority = f", {message.priority}"
        tail = (
            f", {_NOW} + INTERVAL {micros(message.delay)} MICROSECOND, "
            f"{float(message.visibility_timeout)!r}, {_NOW}{priority})"
        )
        return (
            head.encode(encoding)
            + bytes_literal(connection, message.payload)
            + tail.encode(encoding)
        )

    def insert_statements(
        self,
        connection: Any,
        messages: Sequence[OutgoingMessage],
        *,
        max_allowed_packet: int,
        max_payload_size: int | None,
    ) -> list[bytes]:
        """Multi-row INSERTs (bytes, as sent) for `messages`, each under the packet limit.

        Raises:
            PayloadTooLargeError: A payload is over `max_payload_size`, or its row alone
                would not fit in ``max_allowed_packet``. Raised before anything is sent.
        """
        budget = max_allowed_packet - _STATEMENT_OVERHEAD
        ranked = any(m.priority for m in messages)
        prefix = (self.insert_ranked_prefix if ranked else self.insert_prefix).encode(
            connection.encoding
        )
        statements: list[bytes] = []
        rows: list[bytes] = []
        size = 0
        for message in messages:
            if max_payload_size is not None and len(message.payload) > max_payload_size:
                raise PayloadTooLargeError(
                    f"payload of task {message.task_id} is {len(message.payload)} bytes; "
                    f"max_payload_size is {max_payload_size}"
                )
            row = self.insert_values(connection, message, ranked=ranked)
            if len(row) > budget:
                raise PayloadTooLargeError(
                    f"payload of task {message.task_id} needs {len(row)} bytes of SQL but the "
                    f"server's max_allowed_packet is {max_allowed_packet}: raise it "
                    "(SET GLOBAL max_allowed_packet = 67108864; max_allowed_packet=64M in my.cnf)"
                    " or send a smaller payload"
                )
            if rows and (size + len(row) + 2 > budget or len(rows) >= _ROWS_PER_STATEMENT):
                statements.append(prefix + b", ".join(rows))
                rows, size = [], 0
            rows.append(row)
            size += len(row) + 2
        if rows:
            statements.append(prefix + b", ".join(rows))
        return statements

    def next_due(self, queue_count: int) -> str:
        """Microseconds until the earliest row of these queues is due (NULL when empty)."""
        parts = " UNION ALL ".join([self.next_due_part] * queue_count)
        return f"SELECT TIMESTAMPDIFF(MICROSECOND, {_NOW}, MIN(`due`)) FROM ({parts}) AS `d`"


def storable_text(text: str) -> str:
    """Text fit for a utf8mb4 column: lone surrogates replaced, very long texts cut."""
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + "\n... [truncated]"
    return text.encode("utf-8", "replace").decode("utf-8")


def placeholders(count: int) -> str:
    """``(%s, %s, ...)`` with `count` placeholders."""
    return "(" + ", ".join(["%s"] * count) + ")"


def lease_condition(count: int) -> str:
    """WHERE clause matching `count` (id, lease_token) pairs; the id list drives the index."""
    return (
        f"`id` IN {placeholders(count)} AND (`id`, `lease_token`) IN ("
        + ", ".join(["(%s, %s)"] * count)
        + ")"
    )


def lease_params(leases: Sequence[tuple[int, int]]) -> list[int]:
    """Parameters for `lease_condition`: the ids, then each id with its token."""
    params = [row_id for row_id, _ in leases]
    for row_id, token in leases:
        params.extend((row_id, token))
    return params


__all__ = [
    "Statements",
    "bytes_literal",
    "lease_condition",
    "lease_params",
    "micros",
    "placeholders",
    "storable_text",
]
