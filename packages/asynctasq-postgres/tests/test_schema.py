"""Schema creation: explicit, idempotent, versioned, concurrent-safe; plans use the index."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from asynctasq.drivers.base import OutgoingMessage, StatusWrite
from asynctasq_postgres import LATEST_VERSION, PostgresDriver, SchemaNotInitializedError

Factory = Callable[..., PostgresDriver]


async def _tables(admin: asyncpg.Connection[asyncpg.Record], schema: str) -> set[str]:
    rows = await admin.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    return {row[0] for row in rows}


async def test_nothing_is_created_until_asked(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    driver = make_driver()
    await driver.connect()
    assert await _tables(admin, driver.table_names.schema) == set()
    assert await driver.schema_version() == 0
    message = OutgoingMessage(str(uuid.uuid4()), "q", b"x")
    with pytest.raises(SchemaNotInitializedError, match="asynctasq migrate"):
        await driver.enqueue(message)


async def test_init_schema_is_idempotent_and_versioned(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    driver = make_driver(queue_table="jobs", dead_letter_table="jobs_dead")
    assert await driver.init_schema() == [1, 2, 3, 4, 5, 6]
    assert await driver.init_schema() == []
    assert await driver.schema_version() == LATEST_VERSION == 6
    schema = driver.table_names.schema
    assert await _tables(admin, schema) == {
        "jobs",
        "jobs_dead",
        "jobs_migrations",
        "jobs_results",
        "jobs_status",
        "jobs_log",
        "jobs_workers",
        "jobs_claims",
    }
    rows = await admin.fetch(f'SELECT version FROM "{schema}".jobs_migrations ORDER BY 1')
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]
    column = await admin.fetchval(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'jobs_dead' AND column_name = 'task_id'",
        schema,
    )
    assert column == "uuid"


async def test_concurrent_init_schema_applies_each_migration_once(make_driver: Factory) -> None:
    first = make_driver()
    others = [make_driver(schema=first.table_names.schema) for _ in range(3)]
    results = await asyncio.gather(*(d.init_schema() for d in [first, *others]))
    assert sorted(results) == [[], [], [], [1, 2, 3, 4, 5, 6]]


async def test_a_version_1_schema_gets_the_results_table(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    from asynctasq_postgres.schema import MIGRATIONS, _bootstrap_sql

    driver = make_driver()
    names = driver.table_names
    await admin.execute(_bootstrap_sql(names))
    await admin.execute(MIGRATIONS[0].render(names))
    await admin.execute(f"INSERT INTO {names.migrations} (version, description) VALUES (1, 'v1')")
    await driver.enqueue(OutgoingMessage(str(uuid.uuid4()), "q", b"x"))  # a live queue
    assert await driver.init_schema() == [2, 3, 4, 5, 6]
    await driver.store_result("t", b"42", 60)
    assert await driver.fetch_result("t", 0) == b"42"
    [stats] = await driver.stats(["q"])
    assert stats.ready == 1


async def test_a_version_2_schema_gets_the_lifecycle_tables(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    from asynctasq_postgres.schema import MIGRATIONS, _bootstrap_sql

    driver = make_driver()
    names = driver.table_names
    await admin.execute(_bootstrap_sql(names))
    for migration in MIGRATIONS[:2]:
        await admin.execute(migration.render(names))
        await admin.execute(
            f"INSERT INTO {names.migrations} (version, description) VALUES ($1, $2)",
            migration.version,
            migration.description,
        )
    await driver.enqueue(OutgoingMessage(str(uuid.uuid4()), "q", b"x"))  # a live queue
    await driver.store_result("t", b"42", 60)
    with pytest.raises(SchemaNotInitializedError, match="asynctasq migrate"):
        await driver.read_status("t")  # a driver newer than its tables says what to do
    assert await driver.init_schema() == [3, 4, 5, 6]
    await driver.write_statuses([StatusWrite("t", "q", "queued", b"{}", 60)])
    assert await driver.read_status("t") == b"{}"
    await driver.append_log("events", [b"e"], 60)
    assert (await driver.read_log("events", None, wait=0))[0] == [b"e"]
    await driver.heartbeat_worker("w", b"w", 60)
    assert await driver.list_workers() == [b"w"]
    [stats] = await driver.stats(["q"])
    assert stats.ready == 1
    assert await driver.fetch_result("t", 0) == b"42"


async def test_a_version_3_schema_gets_the_claims_table(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    from asynctasq_postgres.schema import MIGRATIONS, _bootstrap_sql

    driver = make_driver()
    names = driver.table_names
    await admin.execute(_bootstrap_sql(names))
    for migration in MIGRATIONS[:3]:
        await admin.execute(migration.render(names))
        await admin.execute(
            f"INSERT INTO {names.migrations} (version, description) VALUES ($1, $2)",
            migration.version,
            migration.description,
        )
    await driver.enqueue(OutgoingMessage(str(uuid.uuid4()), "q", b"x"))  # a live queue
    await driver.write_statuses([StatusWrite("t", "q", "queued", b"{}", 60)])
    with pytest.raises(SchemaNotInitializedError, match="asynctasq migrate"):
        await driver.claim("schedule:s:1", "w1", 60)  # a driver newer than its tables
    with pytest.raises(SchemaNotInitializedError, match="asynctasq migrate"):
        await driver.read_claim("schedule:s:1")
    assert await driver.init_schema() == [4, 5, 6]
    assert await driver.claim("schedule:s:1", "w1", 60) is None
    assert await driver.read_claim("schedule:s:1") == "w1"
    assert await driver.release_claim("schedule:s:1", "w1") is True
    [stats] = await driver.stats(["q"])
    assert stats.ready == 1
    assert await driver.read_status("t") == b"{}"


async def test_auto_migrate_creates_tables_on_connect(make_driver: Factory) -> None:
    driver = make_driver(auto_migrate=True)
    await driver.connect()
    assert await driver.schema_version() == LATEST_VERSION


async def test_dry_run_script_is_the_same_schema(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    driver = make_driver(queue_table="q1", dead_letter_table="d1")
    script = driver.migration_sql()
    assert "CREATE TABLE IF NOT EXISTS" in script
    assert f'"{driver.table_names.schema}"."q1"' in script
    await admin.execute(script)
    await admin.execute(script)  # running it twice by hand is harmless too
    assert await driver.init_schema() == []
    assert await driver.schema_version() == LATEST_VERSION


async def test_dequeue_plan_walks_the_index_without_sorting(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Even for queues the statistics do not know (analyzed while empty, then a burst),
    the dequeue walks the index in order and stops at `limit`: no sort of the backlog."""
    names = driver.table_names
    await admin.execute(f"ANALYZE {names.queue}")
    await admin.execute(
        f"INSERT INTO {names.queue} (task_id, queue, payload, available_at, visibility_timeout) "
        "SELECT gen_random_uuid(), 'q' || (i % 4), 'x', now() - i * interval '1 ms', 30 "
        "FROM generate_series(1, 20000) i"
    )
    floor = await admin.fetchrow(f"SELECT available_at, id FROM {names.queue} LIMIT 1")
    assert floor is not None
    pool = driver._pool
    assert pool is not None
    async with pool.acquire() as connection:  # the driver's session settings apply
        for mode in ("force_custom_plan", "force_generic_plan"):
            for floors in (([None, None], [None, None]), ([floor[0], None], [floor[1], None])):
                async with connection.transaction():
                    await connection.execute(f"SET LOCAL plan_cache_mode = {mode}")
                    rows = await connection.fetch(
                        "EXPLAIN " + driver._sql.dequeue, ["q1", "q2"], 10, *floors
                    )
                plan = "\n".join(row[0] for row in rows)
                assert f"Index Scan using {names.queue_table}_dequeue_idx" in plan, plan
                assert "ROW(available_at, id) >= ROW(COALESCE(q.floor_at" in plan
                assert "Sort" not in plan, plan
                assert "Seq Scan" not in plan, plan


async def _dequeue_buffers(driver: PostgresDriver, floor: tuple[object, object] | None) -> int:
    """Index pages one dequeue reads, run through the driver's own pool connection."""
    floor_at, floor_id = floor or (None, None)
    pool = driver._pool
    assert pool is not None
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:  # EXPLAIN ANALYZE runs the dequeue: roll its leases back
            rows = await connection.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + driver._sql.dequeue,
                ["q"],
                10,
                [floor_at],
                [floor_id],
            )
        finally:
            await transaction.rollback()
    plan = json.loads(rows[0][0])[0]["Plan"]
    scans = list(_nodes(plan, "Index Scan", f"{driver.table_names.queue_table}_dequeue_idx"))
    assert len(scans) == 1, json.dumps(plan, indent=1)
    assert "Sort" not in json.dumps(plan)
    return int(scans[0]["Shared Hit Blocks"]) + int(scans[0]["Shared Read Blocks"])


def _nodes(plan: dict[str, Any], node_type: str, index: str) -> Iterator[dict[str, Any]]:
    if plan["Node Type"] == node_type and plan.get("Index Name") == index:
        yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child, node_type, index)


async def test_a_drained_front_is_not_rescanned(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Acked rows leave dead index entries at the front of the queue until VACUUM; the
    floor keeps the dequeue from stepping over them, so draining does not slow down."""
    total = 12_000
    # VACUUM would clean the front up; keep it away so the test shows what the floor does.
    await admin.execute(f"ALTER TABLE {driver.table_names.queue} SET (autovacuum_enabled = false)")
    for _ in range(0, total, 2000):
        await driver.enqueue_many(
            [OutgoingMessage(str(uuid.uuid4()), "q", b"{}") for _ in range(2000)]
        )
    drained = 0
    while drained < 10_000:
        batch = await driver.dequeue(["q"], limit=100, wait=0)
        await driver.ack(batch)
        drained += len(batch)
    floor = driver._floors["q"][:2]
    from_front = await _dequeue_buffers(driver, None)
    from_floor = await _dequeue_buffers(driver, floor)
    assert from_floor * 3 < from_front, (from_floor, from_front)


async def test_a_row_below_the_floor_is_not_stranded(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    await driver.enqueue_many([OutgoingMessage(str(uuid.uuid4()), "q", b"{}") for _ in range(25)])
    assert len(await driver.dequeue(["q"], limit=10, wait=0)) == 10  # full: floor set
    # A row committed late by a long transaction: its available_at is older than the floor.
    late = uuid.uuid4()
    await admin.execute(
        f"INSERT INTO {driver.table_names.queue} "
        "(task_id, queue, payload, available_at, visibility_timeout) "
        "VALUES ($1, 'q', '', now() - interval '1 hour', 30)",
        late,
    )
    seen = [d.task_id for d in await driver.dequeue(["q"], limit=10, wait=0)]
    assert str(late) not in seen  # hidden below the floor for now...
    seen = [d.task_id for d in await driver.dequeue(["q"], limit=10, wait=0)]
    seen += [d.task_id for d in await driver.dequeue(["q"], limit=10, wait=0)]
    assert str(late) in seen  # ...until a batch comes back short and the floor is dropped


async def test_a_version_4_schema_gets_priorities(
    make_driver: Factory, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    from asynctasq_postgres.schema import MIGRATIONS, _bootstrap_sql

    driver = make_driver()
    names = driver.table_names
    await admin.execute(_bootstrap_sql(names))
    for migration in MIGRATIONS[:4]:
        await admin.execute(migration.render(names))
        await admin.execute(
            f"INSERT INTO {names.migrations} (version, description) VALUES ($1, $2)",
            migration.version,
            migration.description,
        )
    old = OutgoingMessage(str(uuid.uuid4()), "q", b"old")
    await driver.enqueue(old)  # priority 0 still queues on the old tables
    await driver.enqueue_many([OutgoingMessage(str(uuid.uuid4()), "q", b"old") for _ in range(2)])
    urgent = OutgoingMessage(str(uuid.uuid4()), "q", b"urgent", priority=5)
    with pytest.raises(SchemaNotInitializedError, match="migrate"):
        await driver.enqueue(urgent)  # a driver newer than its tables says what to do
    with pytest.raises(SchemaNotInitializedError, match="migrate"):
        await driver.dequeue(["q"], limit=1, wait=0)
    assert await driver.init_schema() == [5, 6]
    await driver.enqueue(urgent)
    got = await driver.dequeue(["q"], limit=2, wait=0)
    assert [d.task_id for d in got] == [urgent.task_id, old.task_id]
    [stats] = await driver.stats(["q"])
    assert (stats.ready, stats.in_flight) == (2, 2)


async def test_priority_dequeue_plan_uses_the_partial_index(
    driver: PostgresDriver, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    """Each level is a range scan of the partial index: no sort, no sequential scan."""
    names = driver.table_names
    await admin.execute(
        f"INSERT INTO {names.queue} "
        "(task_id, queue, payload, available_at, visibility_timeout, priority) "
        "SELECT gen_random_uuid(), 'q' || (i % 4), 'x', now() - i * interval '1 ms', 30, i % 3 "
        "FROM generate_series(1, 20000) i"
    )
    await admin.execute(f"ANALYZE {names.queue}")
    pool = driver._pool
    assert pool is not None
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "EXPLAIN " + driver._sql.dequeue, ["q1", "q2"], 10, [None, None], [None, None]
        )
    plan = "\n".join(row[0] for row in rows)
    assert f"Index Scan using {names.queue_table}_priority_idx" in plan, plan
    assert f"Index Scan using {names.queue_table}_dequeue_idx" in plan, plan
    assert "Sort" not in plan, plan
    assert "Seq Scan" not in plan, plan
