"""Claims on PostgreSQL beyond the conformance suite: sweeping expired rows, rows written
behind the driver's back, the plan of a read."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
import pytest

from asynctasq.drivers.claims import MAX_CLAIM_HOLDER_LENGTH, MAX_CLAIM_TTL
from asynctasq_postgres import PostgresDriver

Admin: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


async def _rows(admin: Admin, driver: PostgresDriver) -> int:
    count: int = await admin.fetchval(f"SELECT count(*) FROM {driver.table_names.claims}")
    return count


async def test_expired_claims_are_swept_by_later_claims(
    driver: PostgresDriver, admin: Admin
) -> None:
    names = driver.table_names
    await admin.execute(
        f"INSERT INTO {names.claims} (key, holder, expires_at) "
        "SELECT 'old:' || i, 'w', now() - interval '1 second' FROM generate_series(1, 600) i"
    )
    await admin.execute(
        f"INSERT INTO {names.claims} (key, holder, expires_at) "
        "VALUES ('live', 'w', now() + interval '1 hour')"
    )
    assert await driver.claim("new:1", "w", 60) is None  # sweeps a full batch (500)...
    assert await _rows(admin, driver) == 600 - 500 + 2
    assert await driver.claim("new:2", "w", 60) is None  # ...so the next claim sweeps again
    assert await _rows(admin, driver) == 3
    assert await driver.claim("new:3", "w", 60) is None  # and then only now and then
    assert await _rows(admin, driver) == 4
    assert await driver.read_claim("live") == "w"


async def test_a_released_claim_leaves_no_row_and_an_expired_one_is_not_released(
    driver: PostgresDriver, admin: Admin
) -> None:
    names = driver.table_names
    assert await driver.claim("unique:t:1", "task-1", 60) is None
    assert await driver.release_claim("unique:t:1", "task-1") is True
    assert await _rows(admin, driver) == 0
    await admin.execute(
        f"INSERT INTO {names.claims} (key, holder, expires_at) "
        "VALUES ('unique:t:2', 'task-2', now() - interval '1 second')"
    )
    assert await driver.release_claim("unique:t:2", "task-2") is False
    assert await driver.read_claim("unique:t:2") is None


@pytest.mark.parametrize(
    ("holder", "expires"),
    [
        ("repeat('x', 1000000)", "now() + interval '1 hour'"),
        (f"repeat('x', {MAX_CLAIM_HOLDER_LENGTH + 1})", "now() + interval '1 hour'"),
        ("'a/holder'", "'infinity'"),
        ("'a/holder'", "now() + interval '200 years'"),
    ],
)
async def test_a_row_no_driver_writes_is_no_claim(
    driver: PostgresDriver, admin: Admin, holder: str, expires: str
) -> None:
    """A holder compare-and-replace can never name, or a claim that never ends: whoever can
    write the table could otherwise hold a limit or a schedule tick for ever."""
    names = driver.table_names
    await admin.execute(
        f"INSERT INTO {names.claims} (key, holder, expires_at) VALUES ('forged', {holder}, "
        f"{expires})"
    )
    assert await driver.read_claim("forged") is None
    assert await driver.claim("forged", "w1", 60) is None
    assert await driver.read_claim("forged") == "w1"
    assert await driver.release_claim("forged", "w1") is True


async def test_the_longest_holder_and_ttl_are_a_claim(driver: PostgresDriver) -> None:
    longest = "\U0001f600" * MAX_CLAIM_HOLDER_LENGTH
    assert await driver.claim("long", longest, MAX_CLAIM_TTL) is None
    assert await driver.read_claim("long") == longest
    assert await driver.claim("long", "w1", 60) == longest


async def test_a_read_is_one_primary_key_probe(driver: PostgresDriver, admin: Admin) -> None:
    names = driver.table_names
    await admin.execute(
        f"INSERT INTO {names.claims} (key, holder, expires_at) "
        "SELECT 'k:' || i, 'w', now() + interval '1 hour' FROM generate_series(1, 5000) i"
    )
    await admin.execute(f"ANALYZE {names.claims}")
    pool = await driver._ensure_pool()
    rows = await pool.fetch("EXPLAIN " + driver._claim_sql.read, "k")
    plan = "\n".join(row[0] for row in rows)
    assert f"{driver.table_names.claims_table}_pkey" in plan, plan
