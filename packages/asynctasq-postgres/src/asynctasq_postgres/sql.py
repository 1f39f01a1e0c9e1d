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

from asynctasq.core.options import MAX_SECONDS
from asynctasq.drivers.base import MALFORMED_LEASE, MAX_WORKER_RECORDS
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
DQ_RANK = 9
"""Minus the row's priority: sorting by it puts higher priorities first."""

# Priorities: rows of priority 0 are served by the scan above, unchanged (it only adds
# ``priority = 0``, true of every row when nobody sets one). Rows of priority 1-9 come first,
# one range scan per level on a partial index ``(queue, priority, available_at, id) WHERE
# priority > 0``: empty, and nine probes of an empty index, when nobody sets one, and never
# stepping over leased or delayed rows of a level.


RESULT_WAKE = "@result "
"""Prefix of the notification name that wakes the waiters of one result: queue names cannot
contain a space, so no queue's waiters see it."""

LOG_WAKE = "@log "
"""Prefix of the notification name that wakes the readers of one log (as `RESULT_WAKE`)."""

# Logs: why appends and reads take an advisory lock. A reader's cursor is the last id it
# read, so it must never see an id while a smaller one of the same log is still to commit:
# ids are handed out when a row is inserted, and commits can finish in any order, so a
# reader could otherwise step past an entry committed a moment later and lose it for good
# (a lost cancel request means a task that runs anyway). Each append holds a *shared*
# per-log lock from before its ids are drawn until its commit, so appends never wait for
# each other. A reader that sees entries past its cursor takes the *exclusive* lock once:
# that waits for the appends in flight, so every id up to the newest one it saw is settled
# (committed or rolled back), and it then reads up to that id with a fresh snapshot (a
# second statement: a statement's snapshot predates any lock it waits for). A reader that
# sees nothing new takes no lock. The log's identity sequence keeps CACHE 1 so ids follow
# the order in which they are drawn.


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement the driver runs, for one set of tables."""

    enqueue: str
    enqueue_many: str
    enqueue_ranked: str
    enqueue_many_ranked: str
    dequeue: str
    ack_and_dequeue: str
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
    write_statuses: str
    read_status: str
    list_statuses: str
    list_statuses_by_queue: str
    list_statuses_by_state: str
    list_statuses_by_queue_state: str
    append_log: str
    log_settled: str
    read_log: str
    log_tail: str
    heartbeat_worker: str
    remove_worker: str
    list_workers: str

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

        # The receipts ($n, $n+1: row ids and lease numbers) whose lease is still held.
        def leases(first: int, also: str = "") -> str:
            return (
                f"unnest(${first}::bigint[], ${first + 1}::int[]) AS r(id, seq){also}\n"
                "WHERE t.id = r.id AND t.lease_seq = r.seq AND t.leased_until IS NOT NULL"
            )

        # A row written behind the driver's back must not fail the statement (and with it
        # every queue's dequeue): a count at the integer limit stays there (the worker then
        # dead-letters it as delivered too often), and a visibility timeout no dispatch
        # could set (NaN is greater than every number here) gets a short lease, in which
        # the worker dead-letters it.
        lease = (
            f"CASE WHEN t.visibility_timeout > 0 AND t.visibility_timeout <= {MAX_SECONDS:.0f} "
            f"THEN t.visibility_timeout ELSE {MALFORMED_LEASE:.0f} END"
        )

        # A row's position as the client reads it back. One before year 1 (written behind
        # the driver's back: '-infinity' or a BC date; it sorts first, so the row is due)
        # cannot be read as a Python datetime, or comes back naive and cannot be ordered
        # with the others: either failed the whole batch after it was leased.
        position = (
            "CASE WHEN picked.available_at >= '0001-01-02 00:00:00+00'::timestamptz "
            "THEN picked.available_at ELSE 'epoch'::timestamptz END"
        )

        # The lateral scan per queue stops as soon as the outer LIMIT is met, so later
        # queues are only read when earlier ones cannot fill the batch. `settle` is a CTE
        # that runs first (a data-modifying CTE always runs), `skip` a condition on rows
        # the scan must pass over.
        def dequeue(settle: str = "", skip: str = "") -> str:
            return f"""
WITH {lazy}{settle}picked AS MATERIALIZED (
    SELECT c.id, c.available_at, q.ord, c.rank
    FROM unnest($1::text[], $3::timestamptz[], $4::bigint[])
        WITH ORDINALITY AS q(name, floor_at, floor_id, ord)
    CROSS JOIN LATERAL (
        SELECT h.id, h.available_at, -lv.p AS rank
        FROM generate_series(9, 1, -1) AS lv(p)
        CROSS JOIN LATERAL (
            SELECT t.id, t.available_at
            FROM {q} t
            WHERE t.queue = q.name AND t.priority = lv.p AND t.priority > 0
              AND t.available_at <= now(){skip}
            ORDER BY t.available_at, t.id
            LIMIT $2::int
            FOR UPDATE SKIP LOCKED
        ) h
        UNION ALL
        SELECT d.id, d.available_at, 0 FROM (
            SELECT t.id, t.available_at
            FROM {q} t
            WHERE t.queue = q.name
              AND (t.available_at, t.id)
                  >= (coalesce(q.floor_at, '-infinity'), coalesce(q.floor_id, 0))
              AND t.available_at <= now(){skip}
              AND t.priority = 0
            ORDER BY t.available_at, t.id
            LIMIT $2::int
            FOR UPDATE SKIP LOCKED
        ) d
    ) c
    LIMIT $2::int
)
UPDATE {q} t
SET attempts = least(t.attempts, 2147483646) + 1,
    lease_seq = CASE WHEN t.lease_seq < 2147483647 THEN t.lease_seq + 1 ELSE 1 END,
    leased_until = now() + make_interval(secs => {lease}),
    available_at = now() + make_interval(secs => {lease})
FROM picked{lazy_from}
WHERE t.id = picked.id
RETURNING t.id, t.lease_seq, t.task_id, t.queue, t.payload, t.attempts,
          t.visibility_timeout, picked.ord, {position}, picked.rank"""

        return cls(
            # Messages of priority 0 are inserted without naming the column (its default),
            # so dispatching keeps working on tables not migrated to version 5 yet.
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
            enqueue_ranked=f"""
WITH ins AS (
    INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout, priority)
    VALUES ($1::uuid, $2::text, $3::bytea,
            now() + make_interval(secs => $4::float8), $5::float8, $6::smallint)
    RETURNING 1
)
SELECT pg_notify({channel}, $2::text || ':' || $4::float8::text) FROM ins""",
            enqueue_many_ranked=f"""
WITH m AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::float8[], $5::float8[],
                         $6::smallint[])
        AS m(task_id, queue, payload, delay, visibility_timeout, priority)
), ins AS (
    INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout, priority)
    SELECT task_id, queue, payload, now() + make_interval(secs => delay), visibility_timeout,
           priority
    FROM m
    RETURNING 1
)
SELECT pg_notify({channel}, queue || ':' || min(delay)::text)
FROM m
WHERE EXISTS (SELECT FROM ins)
GROUP BY queue""",
            dequeue=dequeue(),
            # Finished deliveries ($5, $6) acknowledged by the same statement. The scan passes
            # over them: one whose lease ran out is due again, and one statement must not
            # both delete and re-lease a row.
            ack_and_dequeue=dequeue(
                settle=f"acked AS (\n    DELETE FROM {q} t\n    USING {leases(5)}\n),\n",
                skip=" AND t.id <> ALL($5::bigint[])",
            ),
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
USING {leases(1, lazy_from)}""",
            release=f"""
WITH {lazy}upd AS (
    UPDATE {q} t
    SET attempts = greatest(t.attempts - 1, 0), leased_until = NULL, available_at = now()
    FROM {leases(1, lazy_from)}
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
    RETURNING task_id, queue, payload, attempts, visibility_timeout, priority
)
INSERT INTO {dlq} (task_id, queue, payload, attempts, visibility_timeout,
                   exception_type, message, traceback, failed_at, priority)
SELECT task_id, queue, payload, attempts, visibility_timeout,
       $3::text, $4::text, $5::text, now(), priority
FROM moved
ON CONFLICT (task_id) DO UPDATE
SET queue = EXCLUDED.queue, payload = EXCLUDED.payload, attempts = EXCLUDED.attempts,
    visibility_timeout = EXCLUDED.visibility_timeout, priority = EXCLUDED.priority,
    exception_type = EXCLUDED.exception_type, message = EXCLUDED.message,
    traceback = EXCLUDED.traceback, failed_at = EXCLUDED.failed_at""",
            extend=f"""
{lazy_with}UPDATE {q} t
SET leased_until = now() + make_interval(secs => $3::float8),
    available_at = now() + make_interval(secs => $3::float8)
FROM {leases(1, lazy_from)}""",
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
    RETURNING task_id, queue, payload, visibility_timeout, failed_at, priority
), ins AS (
    INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout, priority)
    SELECT task_id, queue, payload, now(), visibility_timeout, priority
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
            **_lifecycle(names, channel),
        )


def _lifecycle(names: TableNames, channel: str) -> dict[str, str]:
    """The statuses, logs and workers statements (see `Statements`)."""
    st, lg, wk = names.status, names.log, names.workers
    log_key = f"hashtextextended({quote_literal(names.log_lock_prefix)} || $1::text, 0)"
    # The newest live records of each state (few: a task's lifecycle has a handful), merged:
    # a listing without a state filter reads at most limit x states index entries instead
    # of sorting all the records of a queue. `states` is a loose index scan, one probe per
    # distinct state.
    by_state = """
SELECT r.record FROM states
CROSS JOIN LATERAL (
    SELECT t.record, t.seq FROM {st} t
    WHERE {match}t.state = states.state AND t.expires_at > now()
    ORDER BY t.seq DESC
    LIMIT {limit}
) r
WHERE states.state IS NOT NULL
ORDER BY r.seq DESC
LIMIT {limit}"""
    states = """
WITH RECURSIVE states AS (
    (SELECT state FROM {st} WHERE {match}true ORDER BY state LIMIT 1)
    UNION ALL
    SELECT (SELECT t.state FROM {st} t WHERE {match_t}t.state > states.state
            ORDER BY t.state LIMIT 1)
    FROM states
    WHERE states.state IS NOT NULL
)"""
    in_queue = "queue = $1::text AND "
    return {
        # One statement for a batch; records are numbered (`seq`) in the order given. It
        # also deletes up to $6 expired records (0 on most calls: the driver sweeps now and
        # then), never one being written, and returns how many it deleted.
        "write_statuses": f"""
WITH w AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::float8[])
        WITH ORDINALITY AS w(task_id, queue, state, record, ttl, ord)
), swept AS (
    DELETE FROM {st} WHERE task_id IN (
        SELECT task_id FROM {st}
        WHERE expires_at <= now() AND task_id <> ALL($1::text[])
        ORDER BY expires_at LIMIT $6::int FOR UPDATE SKIP LOCKED)
    RETURNING 1
), written AS (
    INSERT INTO {st} (task_id, queue, state, record, expires_at)
    SELECT task_id, queue, state, record, now() + make_interval(secs => ttl)
    FROM w
    ORDER BY ord
    ON CONFLICT (task_id) DO UPDATE
    SET queue = excluded.queue, state = excluded.state, record = excluded.record,
        seq = excluded.seq, expires_at = excluded.expires_at
    RETURNING 1
)
SELECT count(*) FROM swept""",
        "read_status": f"""
SELECT record FROM {st} WHERE task_id = $1::text AND expires_at > now()""",
        "list_statuses": states.format(st=st, match="", match_t="")
        + by_state.format(st=st, match="", limit="$1::int"),
        "list_statuses_by_queue": states.format(st=st, match=in_queue, match_t="t." + in_queue)
        + by_state.format(st=st, match="t." + in_queue, limit="$2::int"),
        "list_statuses_by_state": f"""
SELECT record FROM {st}
WHERE state = $1::text AND expires_at > now()
ORDER BY seq DESC
LIMIT $2::int""",
        "list_statuses_by_queue_state": f"""
SELECT record FROM {st}
WHERE queue = $1::text AND state = $2::text AND expires_at > now()
ORDER BY seq DESC
LIMIT $3::int""",
        # The lock is taken before any id is drawn: the insert reads `appending` row by row.
        # Also deletes up to $4 expired entries of any log, as `write_statuses` does.
        "append_log": f"""
WITH appending AS MATERIALIZED (
    SELECT pg_advisory_xact_lock_shared({log_key})
), swept AS (
    DELETE FROM {lg} WHERE (log, id) IN (
        SELECT log, id FROM {lg} WHERE expires_at <= now()
        ORDER BY expires_at LIMIT $4::int FOR UPDATE SKIP LOCKED)
    RETURNING 1
), appended AS (
    INSERT INTO {lg} (log, entry, expires_at)
    SELECT $1::text, e.entry, now() + make_interval(secs => $3::float8)
    FROM appending, unnest($2::bytea[]) WITH ORDINALITY AS e(entry, ord)
    ORDER BY e.ord
    RETURNING 1
), woken AS (
    SELECT pg_notify({channel}, {quote_literal(LOG_WAKE)} || $1::text || ':0')
    WHERE EXISTS (SELECT FROM appended)
)
SELECT (SELECT count(*) FROM swept), (SELECT count(*) FROM woken)""",
        # The newest live id after the cursor, once no append of the log is in flight; NULL
        # (and no lock) when there is none. CASE evaluates its branches lazily.
        "log_settled": f"""
SELECT CASE WHEN top IS NULL THEN NULL
            WHEN pg_advisory_xact_lock({log_key}) IS NULL THEN NULL
            ELSE top END
FROM (
    SELECT max(id) AS top FROM {lg}
    WHERE log = $1::text AND id > $2::bigint AND expires_at > now()
) newest""",
        "read_log": f"""
SELECT id, CASE WHEN octet_length(entry) <= $5::bigint THEN entry END FROM {lg}
WHERE log = $1::text AND id > $2::bigint AND id <= $3::bigint AND expires_at > now()
ORDER BY id
LIMIT $4::int""",
        "log_tail": f"SELECT coalesce(max(id), 0) FROM {lg} WHERE log = $1::text",
        # Records of workers that stopped without saying so are deleted by the heartbeats
        # of the others (the table holds one row per live worker: the scan is tiny).
        "heartbeat_worker": f"""
WITH gone AS (
    DELETE FROM {wk} WHERE worker_id IN (
        SELECT worker_id FROM {wk}
        WHERE expires_at <= now() AND worker_id <> $1::text
        FOR UPDATE SKIP LOCKED)
)
INSERT INTO {wk} (worker_id, info, expires_at)
VALUES ($1::text, $2::bytea, now() + make_interval(secs => $3::float8))
ON CONFLICT (worker_id) DO UPDATE SET info = excluded.info, expires_at = excluded.expires_at""",
        "remove_worker": f"DELETE FROM {wk} WHERE worker_id = $1::text",
        "list_workers": f"""
SELECT info FROM {wk} WHERE expires_at > now() ORDER BY worker_id
LIMIT {MAX_WORKER_RECORDS:d}""",
    }


__all__ = ["LOG_WAKE", "PLANNER_SETTINGS", "RESULT_WAKE", "Statements"]
