"""Rows written to the queue table behind the driver's back (anyone who can write to it can):
the lease statement must not fail on a row it cannot compute a lease for, or no queue the
worker serves gets anything. Such a row is dead-lettered, never run, and the tasks around it
run."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from asynctasq import task
from asynctasq.core.dispatch import prepare
from asynctasq.worker import Worker
from asynctasq_mysql import MySQLDriver

MALFORMED = "asynctasq.errors.MalformedMessageError"
LOST = "asynctasq.errors.TaskLostError"

_ran: list[str] = []


@task(queue="forged", max_attempts=3)
async def record(name: str) -> None:
    _ran.append(name)


# name -> (column, value): a row of its own that would otherwise run `record(name)`
FORGED = {
    "vt-huge": ("visibility_timeout", "1e300"),
    "vt-overflow": ("visibility_timeout", "1e12"),
    "vt-past-ten-years": ("visibility_timeout", "4e8"),
    "vt-negative": ("visibility_timeout", "-5"),
    "vt-zero": ("visibility_timeout", "0"),
    "attempts-at-limit": ("attempts", "4294967295"),
}


async def _insert(admin: Any, table: str, name: str, column: str, value: str) -> None:
    columns = {"visibility_timeout": "30", column: value}
    async with admin.cursor() as cursor:
        await cursor.execute(
            f"INSERT INTO `{table}` (`task_id`, `queue`, `payload`, `available_at`, "
            f"`enqueued_at`, {', '.join(f'`{c}`' for c in columns)}) VALUES (%s, 'forged', %s, "
            f"UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), {', '.join(columns.values())})",
            (str(uuid.uuid4()), prepare(record(name)).payload.decode()),
        )


async def test_forged_rows_are_dead_lettered_and_every_queue_keeps_running(
    driver: MySQLDriver, admin: Any, table_names: dict[str, str]
) -> None:
    _ran.clear()
    await driver.enqueue_many([prepare(record(f"good-{n}")) for n in range(3)])
    for name, (column, value) in FORGED.items():
        await _insert(admin, table_names["queue"], name, column, value)
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
    )
    dead = await driver.list_dead_letters(queue="forged", limit=100)
    assert sorted(d.failure.exception_type for d in dead) == sorted([MALFORMED] * 5 + [LOST])
    assert all(b"record" in d.payload for d in dead)  # the row's payload, kept
    stats = {s.queue: s for s in await driver.stats(["forged", "other"])}
    assert (stats["forged"].ready, stats["forged"].in_flight) == (0, 0)
    assert (stats["other"].ready, stats["other"].in_flight) == (0, 0)


async def test_a_dead_letter_with_a_zero_date_hides_no_other(
    driver: MySQLDriver, admin: Any, table_names: dict[str, str]
) -> None:
    """The client reads a zero date as a str: such a row (written behind the driver's back)
    lists at the epoch instead of failing every listing."""
    await driver.connect()  # creates the tables
    async with admin.cursor() as cursor:
        await cursor.execute("SET SESSION sql_mode = ''")  # lets a zero date in
        for name, at in (("zero", "'0000-00-00 00:00:00'"), ("fine", "UTC_TIMESTAMP(6)")):
            await cursor.execute(
                f"INSERT INTO `{table_names['dead_letter']}` (`task_id`, `queue`, `payload`, "
                "`visibility_timeout`, `attempts`, `exception_type`, `error_message`, "
                f"`traceback`, `failed_at`) VALUES (%s, 'forged', 'p', 30, 1, 'E', 'm', 't', {at})",
                (name,),
            )
    listed = await driver.list_dead_letters(queue="forged")
    assert [d.task_id for d in listed] == ["zero", "fine"]
    assert listed[0].failed_at.timestamp() == 0
