"""Schema: validated names, idempotent versioned migrations, dry-run SQL, index use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from asynctasq.drivers.base import OutgoingMessage
from asynctasq.drivers.sql import InvalidIdentifierError
from asynctasq_mysql import MySQLDriver, SchemaNotInitializedError, parse_dsn
from asynctasq_mysql.schema import TableNames, identifier


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1queue",
        "queue-table",
        "t; DROP TABLE users",
        "a`b",
        "q.t",
        "täble",
        "x" * 65,
        "tq\n",
    ],
)
def test_bad_table_names_are_rejected_before_any_sql(name: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="invalid"):
        identifier(name)
    with pytest.raises(InvalidIdentifierError, match="queue_table"):
        MySQLDriver(queue_table=name)
    with pytest.raises(InvalidIdentifierError, match="dead_letter_table"):
        MySQLDriver(dead_letter_table=name)


def test_good_names_are_backquoted_and_must_differ() -> None:
    assert identifier("_Task_Queue_2") == "`_Task_Queue_2`"
    assert TableNames.build("jobs", "jobs_dead").migrations == "`jobs_migrations`"
    driver = MySQLDriver(queue_table="jobs", dead_letter_table="jobs_dead")
    assert (driver.queue_table, driver.dead_letter_table) == ("jobs", "jobs_dead")
    with pytest.raises(InvalidIdentifierError, match="must differ"):
        TableNames.build("jobs", "JOBS")


def test_migration_sql_needs_no_server_and_names_the_tables() -> None:
    sql = MySQLDriver(queue_table="jobs", dead_letter_table="jobs_dead").migration_sql()
    assert "CREATE TABLE IF NOT EXISTS `jobs` (" in sql
    assert "CREATE TABLE IF NOT EXISTS `jobs_dead` (" in sql
    assert "CREATE TABLE IF NOT EXISTS `jobs_migrations` (" in sql
    assert "LONGBLOB" in sql
    assert "KEY `ix_dequeue` (`queue`, `available_at`)" in sql


async def _tables(admin: Any, names: dict[str, str]) -> set[str]:
    async with admin.cursor() as cursor:
        await cursor.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME IN (%s, %s, %s)",
            tuple(names.values()),
        )
        return {row[0] for row in await cursor.fetchall()}


async def test_init_schema_is_idempotent_and_versioned(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    driver = make_driver(auto_migrate=False)
    assert await driver.init_schema() == [1, 2, 3, 4, 5]
    assert await driver.init_schema() == []
    assert await _tables(admin, table_names) == set(table_names.values())
    async with admin.cursor() as cursor:
        await cursor.execute(f"SELECT `version` FROM `{table_names['migrations']}` ORDER BY 1")
        assert await cursor.fetchall() == ((1,), (2,), (3,), (4,), (5,))
    await driver.store_result("t", b"42", 60)  # the results table of migration 2
    assert await driver.fetch_result("t", 0) == b"42"


async def test_without_auto_migrate_a_missing_schema_is_explained(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    driver = make_driver(auto_migrate=False)
    with pytest.raises(SchemaNotInitializedError, match="asynctasq migrate"):
        await driver.connect()
    assert not driver.connected
    assert await driver.init_schema() == [1, 2, 3, 4, 5]
    await driver.connect()
    assert await driver.queue_names() == []


async def test_auto_migrate_needs_no_ddl_privilege_once_migrated(
    make_driver: Callable[..., MySQLDriver],
    admin: Any,
    table_names: dict[str, str],
    mysql_dsn: str,
) -> None:
    await make_driver().init_schema()
    user = f"atq_dml_{uuid.uuid4().hex[:8]}"
    base = parse_dsn(mysql_dsn)
    async with admin.cursor() as cursor:
        await cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY 'pw'", (user,))
        for table in table_names.values():
            await cursor.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{base.database}`.`{table}` TO %s@'%%'",
                (user,),
            )
    try:
        driver = make_driver(dsn=f"mysql://{user}:pw@{base.host}:{base.port}/{base.database}")
        await driver.enqueue(OutgoingMessage(task_id=str(uuid.uuid4()), queue="q", payload=b"x"))
        assert len(await driver.dequeue(["q"], limit=1, wait=0)) == 1
        await driver.close()
    finally:
        async with admin.cursor() as cursor:
            await cursor.execute("DROP USER %s@'%%'", (user,))


async def test_concurrent_migrations_apply_once(
    make_driver: Callable[..., MySQLDriver],
) -> None:
    drivers = [make_driver(auto_migrate=False, max_pool_size=1) for _ in range(3)]
    results = await asyncio.gather(*(d.init_schema() for d in drivers))
    assert sorted(results) == [[], [], [1, 2, 3, 4, 5]]


async def test_auto_migrate_at_connect(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    await make_driver().connect()
    assert await _tables(admin, table_names) == set(table_names.values())


async def test_dry_run_script_builds_the_same_schema(
    make_driver: Callable[..., MySQLDriver], admin: Any, table_names: dict[str, str]
) -> None:
    driver = make_driver(auto_migrate=False)
    async with admin.cursor() as cursor:
        for statement in driver.migration_sql().split(";\n"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
            if body.strip():
                await cursor.execute(body)
    assert await _tables(admin, table_names) == set(table_names.values())
    assert await driver.init_schema() == []  # the script recorded its version
    await driver.enqueue(OutgoingMessage(task_id=str(uuid.uuid4()), queue="q", payload=b"x"))
    assert len(await driver.dequeue(["q"], limit=1, wait=0)) == 1


async def test_dequeue_walks_the_index_without_sorting(
    driver: MySQLDriver, admin: Any, table_names: dict[str, str]
) -> None:
    await driver.enqueue_many(
        [
            OutgoingMessage(task_id=str(uuid.uuid4()), queue=f"q{i % 5}", payload=b"x", delay=i % 3)
            for i in range(500)
        ]
    )
    async with admin.cursor() as cursor:
        await cursor.execute(f"ANALYZE TABLE `{table_names['queue']}`")
        await cursor.fetchall()
        await cursor.execute(
            "EXPLAIN " + driver._sql.select_ready.replace(" FOR UPDATE SKIP LOCKED", ""),
            ("q1", 10, "q1", 10),
        )
        columns = [d[0].lower() for d in cursor.description]
        plans = [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]
    # the priority-0 part walks ix_dequeue, the priorities 1-9 part ix_priority: no sort
    scans = {plan["key"]: plan for plan in plans if plan["key"]}
    assert set(scans) == {"ix_dequeue", "ix_priority"}, plans
    for plan in scans.values():
        assert "filesort" not in (plan.get("extra") or "").lower(), plan
