"""The driver's statements, built once per driver from validated, quoted names.

Row model (queue table): one row per message. ``available_at`` is the moment the row may be
dequeued next. A dequeue sets it to the lease deadline (and ``leased_until`` to the same
value), so an expired lease is simply a row whose ``available_at`` has passed: the dequeue
query treats ``leased_until < now()`` rows as ready without a second index or a UNION, and
leased rows sit past ``now()`` at the end of each queue's index range where the scan never
reaches them. One index, ``(queue, available_at, id)``, therefore serves the dequeue exactly
(ready, delayed and expired rows alike) and also the "when is the next row due" query.

``lease_seq`` counts leases handed out (never decremented), so a receipt ``(id, lease_seq)``
names one lease: an ack, retry, extend or dead-letter with a receipt whose lease was
re-leased by someone else matches no row and changes nothing.

NOTIFY payloads are ``"<queue>:<delay seconds>"``; notifications are sent by the same
statement that writes the rows, so PostgreSQL delivers them at commit (never for a
rolled-back transaction).
"""

from __future__ import annotations

from dataclasses import dataclass

from asynctasq_postgres.naming import TableNames, quote_literal

# The dequeue's optional per-queue floor ($3, $4: an (available_at, id) position in the
# index) starts the index scan where the consumer's last full batch started, instead of at
# the front of the queue's range, where acked and re-leased rows leave dead index entries
# that only VACUUM removes: without it, each dequeue steps over every entry drained since
# the last vacuum, and a deep backlog drains slower and slower. The driver drops the floor
# after an under-filled batch or a second, so a row written below it (by a long
# transaction) waits at most that long.

PLANNER_SETTINGS = {"enable_bitmapscan": "off", "jit": "off"}
"""Session settings of the driver's own pool connections (they run only these statements).

Without statistics for a queue name (a new queue, or one that was empty when the table was
last analyzed), the planner can estimate a handful of matching rows and pick a bitmap scan
plus a sort for the dequeue: it then reads and sorts the whole backlog on every call. With
bitmap scans off, the `(queue, available_at, id)` index is walked in order and stops after
`limit` rows whatever the estimate. JIT compilation never pays off for these short
statements."""

# Column positions of DEQUEUE's result, used by the driver (records index by position).
DQ_ID, DQ_SEQ, DQ_TASK_ID, DQ_QUEUE, DQ_PAYLOAD, DQ_ATTEMPTS, DQ_VT, DQ_ORD, DQ_AVAILABLE = range(9)


RESULT_WAKE = "@result "
"""Prefix of the notification name that wakes the waiters of one result: queue names cannot
contain a space, so no queue's waiters see it."""


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement the driver runs, for one set of tables."""

    enqueue: str
    enqueue_many: str
    dequeue: str
    next_due: str
    ack: str
    release: str
    retry: str
    dead_letter: str
    extend: str
    queue_names: str
    stats: str
    purge: str
    list_dead_letters: str
    retry_dead_letters: str
    purge_dead_letters: str
    store_result: str
    fetch_result: str

    @classmethod
    def build(cls, names: TableNames, *, async_commit_leases: bool = True) -> Statements:
        """Format the statements for `names` (identifiers are validated and quoted).

        Args:
            names: The validated table names.
            async_commit_leases: Let the lease statements (dequeue, ack, extend, release,
                retry) commit without waiting for the WAL flush; see `PostgresDriver`.
        """
        if async_commit_leases:
            # PostgreSQL applies the synchronous_commit value in force at commit time, so a
            # transaction-local set_config inside the statement makes just this one
            # autocommit statement skip the WAL flush wait: no extra round-trip.
            lazy = "lazy_commit AS (SELECT set_config('synchronous_commit', 'off', true)), "
            lazy_with = "WITH " + lazy.rstrip(", ") + "\n"
            lazy_from, lazy_from_first = ", lazy_commit", "FROM lazy_commit"
        else:
            lazy = lazy_with = lazy_from = lazy_from_first = ""
        q = names.queue
        dlq = names.dead_letter
        channel = quote_literal(names.channel)
        dead_filter = (
            "($1::text IS NULL OR queue = $1::text) "
            "AND ($2::uuid[] IS NULL OR task_id = ANY($2::uuid[]))"
        )
        return cls(
            enqueue=f"""
WITH ins AS (
    INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout)
    VALUES ($1::uuid, $2::text, $3::bytea,
            now() + make_interval(secs => $4::float8), $5::float8)
    RETURNING 1
)
SELECT pg_notify({channel}, $2::text || ':' || $4::float8::text) FROM ins""",
            enqueue_many=f"""
WITH m AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::float8[], $5::float8[])
        AS m(task_id, queue, payload, delay, visibility_timeout)
), ins AS (
    INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout)
    SELECT task_id, queue, payload, now() + make_interval(secs => delay), visibility_timeout
    FROM m
    RETURNING 1
)
SELECT pg_notify({channel}, queue || ':' || min(delay)::text)
FROM m
WHERE EXISTS (SELECT FROM ins)
GROUP BY queue""",
            # The lateral scan per queue stops as soon as the outer LIMIT is met, so later
            # queues are only read when earlier ones cannot fill the batch.
            dequeue=f"""
WITH {lazy}picked AS MATERIALIZED (
    SELECT c.id, c.available_at, q.ord
    FROM unnest($1::text[], $3::timestamptz[], $4::bigint[])
        WITH ORDINALITY AS q(name, floor_at, floor_id, ord)
    CROSS JOIN LATERAL (
        SELECT t.id, t.available_at
        FROM {q} t
        WHERE t.queue = q.name
          AND (t.available_at, t.id)
              >= (coalesce(q.floor_at, '-infinity'), coalesce(q.floor_id, 0))
          AND t.available_at <= now()
        ORDER BY t.available_at, t.id
        LIMIT $2::int
        FOR UPDATE SKIP LOCKED
    ) c
    LIMIT $2::int
)
UPDATE {q} t
SET attempts = t.attempts + 1,
    lease_seq = t.lease_seq + 1,
    leased_until = now() + make_interval(secs => t.visibility_timeout),
    available_at = now() + make_interval(secs => t.visibility_timeout)
FROM picked{lazy_from}
WHERE t.id = picked.id
RETURNING t.id, t.lease_seq, t.task_id, t.queue, t.payload, t.attempts,
          t.visibility_timeout, picked.ord, picked.available_at""",
            next_due=f"""
SELECT extract(epoch FROM min(n.available_at) - now())::float8
FROM unnest($1::text[]) AS q(name)
CROSS JOIN LATERAL (
    SELECT t.available_at FROM {q} t
    WHERE t.queue = q.name
    ORDER BY t.available_at
    LIMIT 1
) n""",
            ack=f"""
{lazy_with}DELETE FROM {q} t
USING unnest($1::bigint[], $2::int[]) AS r(id, seq){lazy_from}
WHERE t.id = r.id AND t.lease_seq = r.seq AND t.leased_until IS NOT NULL""",
            release=f"""
WITH {lazy}upd AS (
    UPDATE {q} t
    SET attempts = greatest(t.attempts - 1, 0), leased_until = NULL, available_at = now()
    FROM unnest($1::bigint[], $2::int[]) AS r(id, seq){lazy_from}
    WHERE t.id = r.id AND t.lease_seq = r.seq AND t.leased_until IS NOT NULL
    RETURNING t.queue
)
SELECT pg_notify({channel}, queue || ':0') FROM (SELECT DISTINCT queue FROM upd) d""",
            retry=f"""
WITH {lazy}upd AS (
    UPDATE {q} t
    SET leased_until = NULL, available_at = now() + make_interval(secs => $3::float8)
    {lazy_from_first}
    WHERE t.id = $1::bigint AND t.lease_seq = $2::int AND t.leased_until IS NOT NULL
    RETURNING t.queue
)
SELECT pg_notify({channel}, queue || ':' || $3::float8::text) FROM upd""",
            dead_letter=f"""
WITH moved AS (
    DELETE FROM {q}
    WHERE id = $1::bigint AND lease_seq = $2::int AND leased_until IS NOT NULL
    RETURNING task_id, queue, payload, attempts, visibility_timeout
)
INSERT INTO {dlq} (task_id, queue, payload, attempts, visibility_timeout,
                   exception_type, message, traceback, failed_at)
SELECT task_id, queue, payload, attempts, visibility_timeout,
       $3::text, $4::text, $5::text, now()
FROM moved
ON CONFLICT (task_id) DO UPDATE
SET queue = EXCLUDED.queue, payload = EXCLUDED.payload, attempts = EXCLUDED.attempts,
    visibility_timeout = EXCLUDED.visibility_timeout,
    exception_type = EXCLUDED.exception_type, message = EXCLUDED.message,
    traceback = EXCLUDED.traceback, failed_at = EXCLUDED.failed_at""",
            extend=f"""
{lazy_with}UPDATE {q} t
SET leased_until = now() + make_interval(secs => $3::float8),
    available_at = now() + make_interval(secs => $3::float8)
FROM unnest($1::bigint[], $2::int[]) AS r(id, seq){lazy_from}
WHERE t.id = r.id AND t.lease_seq = r.seq AND t.leased_until IS NOT NULL""",
            # A loose index scan: one index probe per distinct queue, not a full scan.
            queue_names=f"""
WITH RECURSIVE names AS (
    (SELECT queue FROM {q} ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT t.queue FROM {q} t WHERE t.queue > names.queue ORDER BY t.queue LIMIT 1)
    FROM names
    WHERE names.queue IS NOT NULL
)
SELECT queue FROM names WHERE queue IS NOT NULL
UNION
SELECT DISTINCT queue FROM {dlq}
ORDER BY 1""",
            stats=f"""
SELECT q.name, s.ready, s.delayed, s.in_flight,
       (SELECT count(*) FROM {dlq} d WHERE d.queue = q.name) AS dead,
       s.oldest_ready_age
FROM unnest($1::text[]) WITH ORDINALITY AS q(name, ord)
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE t.available_at <= now()) AS ready,
           count(*) FILTER (WHERE t.available_at > now() AND t.leased_until IS NULL)
               AS delayed,
           count(*) FILTER (WHERE t.leased_until > now()) AS in_flight,
           extract(epoch FROM now() - min(t.available_at)
                   FILTER (WHERE t.available_at <= now()))::float8 AS oldest_ready_age
    FROM {q} t
    WHERE t.queue = q.name
) s
ORDER BY q.ord""",
            purge=f"""
WITH gone AS (
    DELETE FROM {q}
    WHERE queue = $1::text AND (leased_until IS NULL OR available_at <= now())
    RETURNING 1
)
SELECT count(*) FROM gone""",
            list_dead_letters=f"""
SELECT task_id, queue, payload, exception_type, message, traceback, attempts, failed_at
FROM {dlq}
WHERE {dead_filter}
ORDER BY failed_at, task_id
LIMIT $3::int""",
            retry_dead_letters=f"""
WITH moved AS (
    DELETE FROM {dlq}
    WHERE {dead_filter}
    RETURNING task_id, queue, payload, visibility_timeout, failed_at
), ins AS (
    INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout)
    SELECT task_id, queue, payload, now(), visibility_timeout
    FROM moved
    ORDER BY failed_at, task_id
    RETURNING queue
), notified AS (
    SELECT pg_notify({channel}, queue || ':0') FROM (SELECT DISTINCT queue FROM ins) d
)
SELECT (SELECT count(*) FROM ins) AS moved, (SELECT count(*) FROM notified) AS notified""",
            purge_dead_letters=f"""
WITH gone AS (DELETE FROM {dlq} WHERE {dead_filter} RETURNING 1)
SELECT count(*) FROM gone""",
            # One statement: keep (or replace) this result, drop up to 100 expired ones, and
            # wake its waiters (the listener routes '<name>:<delay>' payloads by name).
            store_result=f"""
WITH expired AS (
    DELETE FROM {names.results} WHERE task_id IN (
        SELECT task_id FROM {names.results} WHERE expires_at <= now()
        ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED)
), kept AS (
    INSERT INTO {names.results} (task_id, result, expires_at)
    VALUES ($1::text, $2::bytea, now() + make_interval(secs => $3::float8))
    ON CONFLICT (task_id) DO UPDATE
        SET result = excluded.result, expires_at = excluded.expires_at
    RETURNING 1
)
SELECT pg_notify({channel}, {quote_literal(RESULT_WAKE)} || $1::text || ':0') FROM kept""",
            fetch_result=f"""
SELECT result FROM {names.results} WHERE task_id = $1::text AND expires_at > now()""",
        )


__all__ = ["PLANNER_SETTINGS", "RESULT_WAKE", "Statements"]
