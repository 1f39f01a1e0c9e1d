"""Rows written to the queue table behind the driver's back (anyone who can write to it can):
one dequeue statement serves every queue, so a row it cannot compute a lease for must not fail
it. Such a row is dead-lettered, never run, and the tasks around it (on any queue) run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.worker import Worker
from asynctasq_postgres import PostgresDriver

Factory = Callable[..., PostgresDriver]
MALFORMED = "asynctasq.errors.MalformedMessageError"
LOST = "asynctasq.errors.TaskLostError"

_ran: list[str] = []


@task(queue="forged", max_attempts=3)
async def record(name: str) -> None:
    _ran.append(name)


# column -> value, each in a row of its own that would otherwise run `record(<column>=...)`
FORGED = {
    "vt-nan": ("visibility_timeout", "'NaN'"),
    "vt-inf": ("visibility_timeout", "'Infinity'"),
    "vt-huge": ("visibility_timeout", "1e300"),
    "vt-past-ten-years": ("visibility_timeout", "4e8"),
    "vt-negative": ("visibility_timeout", "-5"),
    "attempts-at-limit": ("attempts", "2147483647"),
}


async def test_forged_rows_are_dead_lettered_and_every_queue_keeps_running(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    _ran.clear()
    q = driver.table_names.queue
    await driver.enqueue_many([prepare(record(f"good-{n}")) for n in range(3)])
    for name, (column, value) in FORGED.items():
        columns = {"visibility_timeout": "30", column: value}
        await admin.execute(
            f"INSERT INTO {q} (task_id, queue, payload, available_at, {', '.join(columns)}) "
            f"VALUES (gen_random_uuid(), 'forged', $1, now(), {', '.join(columns.values())})",
            prepare(record(name)).payload,
        )
    # a lease counter at its limit is not wrong: the row runs, its counter starts over
    payload = prepare(record("seq-at-limit")).payload
    await admin.execute(
        f"INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout, "
        "lease_seq) VALUES (gen_random_uuid(), 'forged', $1, now(), 30, 2147483647)",
        payload,
    )
    await driver.enqueue_many([prepare(record(f"other-{n}").on_queue("other")) for n in range(2)])
    await driver.enqueue_many([prepare(record(f"late-{n}")) for n in range(2)])

    worker = Worker(
        driver=driver,
        queues=["forged", "other"],
        concurrency=4,
        poll_wait=0.2,
        burst=True,
        install_signal_handlers=False,
    )
    await asyncio.wait_for(worker.run(), 60)

    assert sorted(_ran) == sorted(
        [f"good-{n}" for n in range(3)]
        + [f"other-{n}" for n in range(2)]
        + [f"late-{n}" for n in range(2)]
        + ["seq-at-limit"]
    )
    dead = await driver.list_dead_letters(queue="forged", limit=100)
    assert len(dead) == len(FORGED)
    kinds = sorted(d.failure.exception_type for d in dead)
    assert kinds == sorted([MALFORMED] * 5 + [LOST])
    assert all("record" in d.payload.decode() for d in dead)  # the row's payload, kept
    stats = {s.queue: s for s in await driver.stats(["forged", "other"])}
    assert (stats["forged"].ready, stats["forged"].in_flight) == (0, 0)
    assert (stats["other"].ready, stats["other"].in_flight) == (0, 0)


async def test_a_forged_visibility_gets_a_short_lease(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Not a lease of 'forever' (a crashed worker would leave the row stuck) nor of 0 (it
    would be handed out again while the first worker dead-letters it)."""
    q = driver.table_names.queue
    for value in ("'NaN'", "'Infinity'", "-5", "0"):
        await admin.execute(
            f"INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout) "
            f"VALUES (gen_random_uuid(), 'short', '{{}}', now(), {value})"
        )
    started = time.time()
    got = await driver.dequeue(["short"], limit=10, wait=0)
    assert len(got) == 4
    ends = await admin.fetch(f"SELECT extract(epoch FROM leased_until)::float8 AS e FROM {q}")
    assert all(55 < row["e"] - started < 65 for row in ends), ends
    assert await driver.dequeue(["short"], limit=10, wait=0) == []


async def test_a_row_due_before_year_1_runs_with_the_rest_of_its_batch(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    """PostgreSQL hands '-infinity' back as a naive datetime, which cannot be ordered with
    the batch's other positions: the whole batch used to be dropped, leased, at every fetch."""
    _ran.clear()
    q = driver.table_names.queue
    await driver.enqueue_many([prepare(record(f"good-{n}")) for n in range(3)])
    for name, at in (("minus-infinity", "-infinity"), ("before-christ", "0100-01-01 BC")):
        await admin.execute(
            f"INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout) "
            f"VALUES (gen_random_uuid(), 'forged', $1, '{at}', 30)",
            prepare(record(name)).payload,
        )
    await driver.enqueue_many([prepare(record(f"late-{n}")) for n in range(2)])
    worker = Worker(
        driver=driver,
        queues=["forged"],
        concurrency=10,
        poll_wait=0.2,
        burst=True,
        install_signal_handlers=False,
    )
    await asyncio.wait_for(worker.run(), 60)
    assert sorted(_ran) == sorted(
        ["minus-infinity", "before-christ"]
        + [f"good-{n}" for n in range(3)]
        + [f"late-{n}" for n in range(2)]
    )
    assert await driver.list_dead_letters(queue="forged") == []


async def test_a_priority_outside_0_to_9_is_refused_by_the_table(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    """No dequeue scan serves such a row: it would sit due for ever, and an idle worker,
    seeing a row due, would look again every few milliseconds."""
    q = driver.table_names.queue
    await driver.enqueue(prepare(record("kept")))
    for priority in (10, 99, -1):
        with pytest.raises(asyncpg.CheckViolationError):
            await admin.execute(
                f"INSERT INTO {q} (task_id, queue, payload, available_at, visibility_timeout, "
                f"priority) VALUES (gen_random_uuid(), 'forged', '{{}}', now(), 30, {priority})"
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await admin.execute(f"UPDATE {q} SET priority = {priority}")
    assert [d.task_id for d in await driver.dequeue(["forged"], limit=10, wait=0)] != []


async def test_dead_letter_times_no_clock_can_show_read_as_unknown(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    """``infinity`` reads back as the last moment a datetime holds, which no time zone east
    of UTC can show: one such row made every listing in local time fail."""
    dlq = driver.table_names.dead_letter
    for stamp in ("infinity", "-infinity", "9999-12-31 23:00:00+00", "0001-01-01 01:00:00+00"):
        await admin.execute(
            f"INSERT INTO {dlq} (task_id, queue, payload, attempts, visibility_timeout, "
            "exception_type, message, traceback, failed_at) VALUES (gen_random_uuid(), "
            f"'forged-time', '', 1, 30, 'x', $1, '', '{stamp}')",
            stamp,
        )
    await admin.execute(
        f"INSERT INTO {dlq} (task_id, queue, payload, attempts, visibility_timeout, "
        "exception_type, message, traceback) VALUES (gen_random_uuid(), 'forged-time', '', "
        "1, 30, 'x', 'real', '')"
    )
    letters = await driver.list_dead_letters(queue="forged-time")
    times = {d.failure.message: d.failed_at for d in letters}
    unknown = datetime.fromtimestamp(0, UTC)
    assert times["infinity"] == times["-infinity"] == unknown
    assert times["9999-12-31 23:00:00+00"] == times["0001-01-01 01:00:00+00"] == unknown
    assert abs(times["real"] - datetime.now(UTC)) < timedelta(minutes=5)
    for d in letters:
        d.failed_at.astimezone(timezone(timedelta(hours=14)))
        d.failed_at.astimezone(timezone(timedelta(hours=-12)))
