"""Group commit: write calls that queued up together share one transaction.

Each driver operation is one transaction. When several arrive while the connection thread
is busy (ten tasks acking, a dequeue, an enqueue), committing them one by one pays the
commit cost (WAL append, lock round-trip, and with ``synchronous=full`` an fsync) each
time. Instead a run of consecutive write calls is wrapped in one ``BEGIN IMMEDIATE`` ...
``COMMIT``; inside it each operation's own transaction becomes a ``SAVEPOINT``
(`asynctasq_sqlite._transaction.immediate`), so an operation that fails rolls back alone
and its neighbours still commit. Every answer is sent only after the ``COMMIT``, so a
caller never hears "done" for a write that is not durable.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence

from asynctasq_sqlite._thread import Job, Outcome, outcome_of, run_each


def run_grouped(conn: sqlite3.Connection | None, jobs: Sequence[Job]) -> list[Outcome]:
    """Run `jobs` in order, each run of two or more groupable jobs in one transaction.

    Args:
        conn: The connection (None before it is opened: then nothing is grouped).
        jobs: The calls of one batch.

    Returns:
        One outcome per job, in order.
    """
    if conn is None or len(jobs) < 2:
        return run_each(jobs)
    outcomes: list[Outcome] = []
    start = 0
    while start < len(jobs):
        end = start
        while end < len(jobs) and jobs[end].groupable:
            end += 1
        if end - start >= 2:
            outcomes += _commit_together(conn, [job.fn for job in jobs[start:end]])
            start = end
        else:
            outcomes.append(outcome_of(jobs[start].fn))
            start += 1
    return outcomes


def _commit_together(conn: sqlite3.Connection, calls: list[Callable[[], object]]) -> list[Outcome]:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return [outcome_of(fn) for fn in calls]  # each on its own; each reports its error
    outcomes: list[Outcome] = []
    pending: list[int] = []  # outcomes that stand or fall with the COMMIT
    for fn in calls:
        grouped = conn.in_transaction
        outcome = outcome_of(fn)
        outcomes.append(outcome)
        if not grouped:
            continue  # the group's transaction was lost earlier: this one ran alone
        if conn.in_transaction:
            pending.append(len(outcomes) - 1)
            continue
        # Some errors (disk full, I/O) make SQLite roll back the whole transaction: the
        # earlier members of the group are undone too and must not report success.
        ok, value = outcome
        error = value if not ok else sqlite3.OperationalError("transaction rolled back")
        for index in pending:
            outcomes[index] = (False, error)
        pending.clear()
    if conn.in_transaction:
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the COMMIT error is the one to report
                    conn.execute("ROLLBACK")
            for index in pending:
                outcomes[index] = (False, exc)
    return outcomes


__all__ = ["run_grouped"]
