"""The SQL statements of the hot path and the dead-letter operations.

Kept as constants so that sqlite3's statement cache compiles each one once per connection.
See `asynctasq_sqlite.schema` for the meaning of ``available_at`` and ``lease``.

The tables are not STRICT: a column keeps any value written into it, of any type, by anyone
with the file. So what the driver hands out is read with a check or a cast: a BLOB column is
read ``CAST(... AS BLOB)`` (``bytes()`` of an INTEGER would allocate that many bytes), a
TEXT column that may be given back raw bytes (sqlite3 fails the whole query on one value
that is not UTF-8), and a number column only when ``typeof`` says it is one.
"""

from __future__ import annotations

from asynctasq.drivers.base import MAX_WORKER_RECORDS

INSERT_MESSAGE = """
INSERT INTO asynctasq_messages
    (task_id, queue, payload, visibility_timeout, attempts, available_at, lease, enqueued_at,
     priority)
VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)
"""

NEXT_DUE = "SELECT min(available_at) FROM asynctasq_messages WHERE queue = ?"
"""When the earliest message of a queue is (or was) due; one index seek."""

_READ_COLUMNS = """
SELECT id, CAST(task_id AS BLOB), CAST(payload AS BLOB),
    CASE WHEN typeof(attempts) = 'integer' AND attempts >= 0 THEN attempts END,
    CASE WHEN typeof(visibility_timeout) IN ('integer', 'real') AND visibility_timeout > 0
        THEN visibility_timeout END
"""

_READ_MESSAGE = _READ_COLUMNS + "FROM asynctasq_messages\n"

SELECT_READY = (
    _READ_MESSAGE
    + """
WHERE queue = ? AND available_at <= ?
ORDER BY available_at, id
LIMIT ?
"""
)
"""Ready messages in FIFO order, whatever their priority (`take` leases those of priorities
1-9 first): a range scan of the dequeue index, no sort step. Attempts and
visibility timeout are NULL when they are not a count and a positive number (a row written
behind the driver's back: the caller dead-letters it instead of handing it out)."""

NEXT_LEVEL = """
SELECT priority FROM asynctasq_messages INDEXED BY asynctasq_messages_priority
WHERE queue = ? AND priority != 0 AND priority > 0 AND priority < ?
ORDER BY priority DESC
LIMIT 1
"""
"""The highest priority below a bound that a message of the queue has (no row: none): one
seek of the partial priority index, which holds no row when nobody sets a priority. A value that
is not a number (written behind the driver's back) sorts above every bound and is never a
level: such a row is served by `SELECT_READY`, in FIFO order."""

SELECT_READY_AT_LEVEL = (
    _READ_COLUMNS
    + """
FROM asynctasq_messages INDEXED BY asynctasq_messages_priority
WHERE queue = ? AND priority = ? AND priority != 0 AND available_at <= ?
ORDER BY available_at, id
LIMIT ?
"""
)
"""Ready messages of one priority level in FIFO order: a range scan of the partial index,
no sort step (``priority != 0`` is spelled out: only a query that implies the index's
condition may use it). ``INDEXED BY`` keeps that plan whatever statistics ``ANALYZE`` left:
the dequeue index is ordered by due time too, but walks every ready row of the queue."""

NOT_SCHEDULED = (
    _READ_MESSAGE
    + """
WHERE queue = ? AND typeof(available_at) NOT IN ('integer', 'real')
LIMIT ?
"""
)
"""Rows whose ``available_at`` is not a time (written behind the driver's back): never due.
They sort after every number, so they show as a queue's next due time only when the queue
has nothing else; then the caller dead-letters them."""

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

DEAD_LETTER = """
INSERT INTO asynctasq_dead_letters
    (task_id, queue, payload, visibility_timeout, attempts,
     exception_type, message, traceback, failed_at, priority)
SELECT task_id, queue, payload, visibility_timeout, attempts, ?, ?, ?, ?, priority
FROM asynctasq_messages
WHERE id = ? AND lease = ?
"""
"""Copy a leased row to the dead letters as it is, without reading it into Python."""

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
SELECT CAST(name AS BLOB) FROM live WHERE name IS NOT NULL
UNION
SELECT CAST(name AS BLOB) FROM dead WHERE name IS NOT NULL
"""
"""Distinct queue names by skipping through the queue indexes: one seek per queue."""

DEAD_LETTER_COLUMNS = (
    "CAST(task_id AS BLOB), CAST(queue AS BLOB), CAST(payload AS BLOB), "
    "CASE WHEN typeof(attempts) = 'integer' THEN attempts END, "
    "CAST(exception_type AS BLOB), CAST(message AS BLOB), CAST(traceback AS BLOB), "
    "CASE WHEN typeof(failed_at) IN ('integer', 'real') THEN failed_at END"
)
"""What `list_dead_letters` reads: text as bytes, numbers or NULL (see the module doc)."""

RETRY_DEAD_LETTERS = """
INSERT INTO asynctasq_messages
    (task_id, queue, payload, visibility_timeout, attempts, available_at, lease, enqueued_at,
     priority)
SELECT task_id, queue, payload, visibility_timeout, 0, :now, NULL, :now, priority
FROM asynctasq_dead_letters{where}
ORDER BY id
"""
"""Dead letters back to their queues as they are (a malformed one is caught at dequeue)."""


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

SELECT_RESULT = (
    "SELECT CAST(result AS BLOB) FROM asynctasq_results WHERE task_id = ? AND expires_at > ?"
)

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

SELECT_STATUS = (
    "SELECT CAST(record AS BLOB) FROM asynctasq_statuses WHERE task_id = ? AND expires_at > ?"
)


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
        f"SELECT CAST(record AS BLOB) FROM asynctasq_statuses WHERE {' AND '.join(clauses)} "
        "ORDER BY seq DESC LIMIT :limit"
    )


TRIM_LOGS = f"""
DELETE FROM asynctasq_logs WHERE id IN (
    SELECT id FROM asynctasq_logs WHERE expires_at <= ? LIMIT {TRIM_BATCH:d}
)
"""

APPEND_LOG = "INSERT INTO asynctasq_logs (log, entry, expires_at) VALUES (?, ?, ?)"

READ_LOG = """
SELECT id, CASE
    WHEN typeof(entry) = 'blob' THEN CASE WHEN length(entry) <= ? THEN entry END
    WHEN typeof(entry) IN ('integer', 'real') THEN CAST(entry AS BLOB)
END
FROM asynctasq_logs
WHERE log = ? AND id > ? AND expires_at > ?
ORDER BY id
LIMIT ?
"""
"""Entries after a cursor, oldest first: a range scan of ``(log, id)``. An entry over the
size bound comes back as NULL, its bytes never read (``length`` of a blob reads only its
header). Values the driver never writes: a number reads as its text, as bytes; a text (whose
length SQLite can only count by reading it) is passed over."""

LOG_TAIL = "SELECT max(id) FROM asynctasq_logs WHERE log = ?"

TRIM_WORKERS = "DELETE FROM asynctasq_workers WHERE expires_at <= ?"

HEARTBEAT_WORKER = (
    "INSERT OR REPLACE INTO asynctasq_workers (worker_id, info, expires_at) VALUES (?, ?, ?)"
)

REMOVE_WORKER = "DELETE FROM asynctasq_workers WHERE worker_id = ?"

LIST_WORKERS = (
    "SELECT CAST(info AS BLOB) FROM asynctasq_workers WHERE expires_at > ? ORDER BY worker_id "
    f"LIMIT {MAX_WORKER_RECORDS:d}"
)
