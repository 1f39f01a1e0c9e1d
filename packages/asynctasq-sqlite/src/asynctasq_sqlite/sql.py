"""The SQL statements of the hot path and the dead-letter operations.

Kept as constants so that sqlite3's statement cache compiles each one once per connection.
See `asynctasq_sqlite.schema` for the meaning of ``available_at`` and ``lease``.
"""

from __future__ import annotations

INSERT_MESSAGE = """
INSERT INTO asynctasq_messages
    (task_id, queue, payload, visibility_timeout, attempts, available_at, lease, enqueued_at)
VALUES (?, ?, ?, ?, ?, ?, NULL, ?)
"""

NEXT_DUE = "SELECT min(available_at) FROM asynctasq_messages WHERE queue = ?"
"""When the earliest message of a queue is (or was) due; one index seek."""

SELECT_READY = """
SELECT id, task_id, queue, payload, attempts, visibility_timeout
FROM asynctasq_messages
WHERE queue = ? AND available_at <= ?
ORDER BY available_at, id
LIMIT ?
"""
"""Ready messages in order: a range scan of the dequeue index, no sort step."""

LEASE = """
UPDATE asynctasq_messages
SET lease = ?, available_at = ? + visibility_timeout, attempts = attempts + 1
WHERE id = ?
"""

ACK = "DELETE FROM asynctasq_messages WHERE id = ? AND lease = ?"

RELEASE = """
UPDATE asynctasq_messages
SET lease = NULL, available_at = ?, attempts = max(attempts - 1, 0)
WHERE id = ? AND lease = ?
"""

RETRY = "UPDATE asynctasq_messages SET lease = NULL, available_at = ? WHERE id = ? AND lease = ?"

EXTEND = "UPDATE asynctasq_messages SET available_at = ? WHERE id = ? AND lease = ?"

LEASED_ROW = """
SELECT task_id, queue, payload, visibility_timeout, attempts
FROM asynctasq_messages
WHERE id = ? AND lease = ?
"""

DELETE_MESSAGE = "DELETE FROM asynctasq_messages WHERE id = ?"

INSERT_DEAD_LETTER = """
INSERT INTO asynctasq_dead_letters
    (task_id, queue, payload, visibility_timeout, attempts,
     exception_type, message, traceback, failed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

PURGE = """
DELETE FROM asynctasq_messages
WHERE queue = ? AND (lease IS NULL OR available_at <= ?)
"""
"""Ready and delayed messages (an expired lease is ready again); live leases stay."""

STATS = """
SELECT
    (SELECT count(*) FROM asynctasq_messages WHERE queue = ?1 AND available_at <= ?2),
    (SELECT count(*) FROM asynctasq_messages
        WHERE queue = ?1 AND available_at > ?2 AND lease IS NULL),
    (SELECT count(*) FROM asynctasq_messages
        WHERE queue = ?1 AND available_at > ?2 AND lease IS NOT NULL),
    (SELECT count(*) FROM asynctasq_dead_letters WHERE queue = ?1)
"""

QUEUE_NAMES = """
WITH RECURSIVE
    live(name) AS (
        SELECT min(queue) FROM asynctasq_messages
        UNION ALL
        SELECT (SELECT min(queue) FROM asynctasq_messages WHERE queue > live.name)
        FROM live WHERE live.name IS NOT NULL
    ),
    dead(name) AS (
        SELECT min(queue) FROM asynctasq_dead_letters
        UNION ALL
        SELECT (SELECT min(queue) FROM asynctasq_dead_letters WHERE queue > dead.name)
        FROM dead WHERE dead.name IS NOT NULL
    )
SELECT name FROM live WHERE name IS NOT NULL
UNION
SELECT name FROM dead WHERE name IS NOT NULL
ORDER BY name
"""
"""Distinct queue names by skipping through the queue indexes: one seek per queue."""

DEAD_LETTER_COLUMNS = (
    "id, task_id, queue, payload, visibility_timeout, attempts, "
    "exception_type, message, traceback, failed_at"
)


def dead_letter_filter(*, queue: str | None, task_ids: object | None) -> str:
    """The WHERE clause selecting dead letters by queue and/or task ids.

    Task ids are bound as one JSON array (``json_each``), so any number of them is one
    parameter and one cached statement.

    Args:
        queue: Filter on this queue when given.
        task_ids: Filter on these task ids when not None (the caller binds the JSON text).

    Returns:
        ``""`` or ``" WHERE ..."`` with named parameters ``:queue`` and ``:task_ids``.
    """
    clauses = []
    if queue is not None:
        clauses.append("queue = :queue")
    if task_ids is not None:
        clauses.append("task_id IN (SELECT value FROM json_each(:task_ids))")
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


DELETE_EXPIRED_RESULTS = "DELETE FROM asynctasq_results WHERE expires_at <= ?"

STORE_RESULT = (
    "INSERT OR REPLACE INTO asynctasq_results (task_id, result, expires_at) VALUES (?, ?, ?)"
)

SELECT_RESULT = "SELECT result FROM asynctasq_results WHERE task_id = ? AND expires_at > ?"

TRIM_BATCH = 500
"""Most expired lifecycle rows one write deletes: a backlog (say, a day of records expiring
at once) is spread over later writes instead of holding the write lock for long."""

TRIM_STATUSES = f"""
DELETE FROM asynctasq_statuses WHERE seq IN (
    SELECT seq FROM asynctasq_statuses WHERE expires_at <= ? LIMIT {TRIM_BATCH:d}
)
"""

WRITE_STATUS = """
INSERT OR REPLACE INTO asynctasq_statuses (task_id, queue, state, record, expires_at)
VALUES (?, ?, ?, ?, ?)
"""
"""Replacing the row (not updating it) gives it the next rowid: the newest ``seq``."""

SELECT_STATUS = "SELECT record FROM asynctasq_statuses WHERE task_id = ? AND expires_at > ?"


def list_statuses(*, queue: bool, state: bool) -> str:
    """Live records newest first, filtered on ``:queue`` and/or ``:state`` when asked.

    Four fixed texts at most, so each is compiled once per connection.
    """
    clauses = ["expires_at > :now"]
    if queue:
        clauses.append("queue = :queue")
    if state:
        clauses.append("state = :state")
    return (
        f"SELECT record FROM asynctasq_statuses WHERE {' AND '.join(clauses)} "
        "ORDER BY seq DESC LIMIT :limit"
    )


TRIM_LOGS = f"""
DELETE FROM asynctasq_logs WHERE id IN (
    SELECT id FROM asynctasq_logs WHERE expires_at <= ? LIMIT {TRIM_BATCH:d}
)
"""

APPEND_LOG = "INSERT INTO asynctasq_logs (log, entry, expires_at) VALUES (?, ?, ?)"

READ_LOG = """
SELECT id, entry FROM asynctasq_logs
WHERE log = ? AND id > ? AND expires_at > ?
ORDER BY id
LIMIT ?
"""
"""Entries after a cursor, oldest first: a range scan of ``(log, id)``."""

LOG_TAIL = "SELECT max(id) FROM asynctasq_logs WHERE log = ?"

TRIM_WORKERS = "DELETE FROM asynctasq_workers WHERE expires_at <= ?"

HEARTBEAT_WORKER = (
    "INSERT OR REPLACE INTO asynctasq_workers (worker_id, info, expires_at) VALUES (?, ?, ?)"
)

REMOVE_WORKER = "DELETE FROM asynctasq_workers WHERE worker_id = ?"

LIST_WORKERS = "SELECT info FROM asynctasq_workers WHERE expires_at > ? ORDER BY worker_id"
