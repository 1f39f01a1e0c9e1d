"""Claims on MySQL/MariaDB beyond the conformance suite: sweeping expired rows, rows written
behind the driver's back, escaping modes, the read's plan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from asynctasq.drivers.claims import MAX_CLAIM_HOLDER_LENGTH
from asynctasq_mysql import MySQLDriver
from asynctasq_mysql.lifecycle import TRIM_BATCH


async def _count(admin: Any, table: str) -> int:
    async with admin.cursor() as cursor:
        await cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
        (count,) = await cursor.fetchone()
    return int(count)


async def _insert_expired(admin: Any, table: str, count: int) -> None:
    async with admin.cursor() as cursor:
        await cursor.execute(
            f"INSERT INTO `{table}` (`key`, `holder`, `expires_at`) "
            "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            "SELECT CONCAT('old:', i), 'w', UTC_TIMESTAMP(6) - INTERVAL 1 SECOND FROM n",
            (count,),
        )
        await admin.commit()


async def test_expired_claims_are_swept_by_later_claims(
    driver: MySQLDriver, admin: Any, table_names: dict[str, str]
) -> None:
    table = f"{table_names['queue']}_claims"
    await _insert_expired(admin, table, TRIM_BATCH + 100)
    assert await driver.claim("live", "w", 3600) is None  # then deletes a full batch...
    assert await _count(admin, table) == 100 + 1
    assert await driver.claim("new", "w", 60) is None  # ...so the next claim goes on
    assert await _count(admin, table) == 2
    assert await driver.release_claim("new", "w") is True
    assert await _count(admin, table) == 1  # released claims leave no row
    assert await driver.read_claim("live") == "w"


@pytest.mark.parametrize(
    ("holder", "expires"),
    [
        ("UNHEX('FFFE206E6F74207574662D38')", "UTC_TIMESTAMP(6) + INTERVAL 1 HOUR"),
        ("REPEAT('x', 300)", "UTC_TIMESTAMP(6) + INTERVAL 1 HOUR"),
        ("'a/holder'", "'9999-12-31 23:59:59'"),
    ],
)
async def test_a_row_no_driver_writes_is_no_claim(
    driver: MySQLDriver, admin: Any, table_names: dict[str, str], holder: str, expires: str
) -> None:
    """A holder compare-and-replace can never name (not UTF-8, or longer than any), or a
    claim that does not end: whoever can write the table could otherwise hold a limit or a
    schedule tick for ever."""
    table = f"{table_names['queue']}_claims"
    async with admin.cursor() as cursor:
        await cursor.execute(
            f"INSERT INTO `{table}` (`key`, `holder`, `expires_at`) "
            f"VALUES ('forged', {holder}, {expires})"
        )
        await admin.commit()
    assert await driver.read_claim("forged") is None
    assert await driver.claim("forged", "w1", 60) is None
    assert await driver.read_claim("forged") == "w1"
    assert await driver.release_claim("forged", "w1") is True


async def test_the_longest_holder_is_a_claim(driver: MySQLDriver) -> None:
    longest = "\U0001f600" * MAX_CLAIM_HOLDER_LENGTH
    assert await driver.claim("long", longest, 3600) is None
    assert await driver.read_claim("long") == longest
    assert await driver.claim("long", "w1", 60) == longest


async def test_claim_statements_work_under_no_backslash_escapes(
    driver: MySQLDriver, connect_raw: Callable[..., Any]
) -> None:
    key, holder = "k'\\'' \\\\ %_", "h'\\ \"`"
    conn = await connect_raw(sql_mode="NO_BACKSLASH_ESCAPES")
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(
                driver._claim_sql.insert, (key.encode().hex(), holder.encode().hex(), 60_000_000)
            )
        await conn.commit()
    finally:
        conn.close()
    assert await driver.read_claim(key) == holder
    assert await driver.claim(key, "other", 60) == holder


async def test_a_read_is_a_primary_key_lookup(driver: MySQLDriver, admin: Any) -> None:
    assert await driver.claim("k", "w", 60) is None
    async with admin.cursor() as cursor:
        await cursor.execute("EXPLAIN " + driver._claim_sql.read, ("6b",))
        columns = [d[0].lower() for d in cursor.description]
        [plan] = [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]
    assert (plan["key"], plan["type"]) == ("PRIMARY", "const"), plan
