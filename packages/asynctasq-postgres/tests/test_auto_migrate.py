"""``auto_migrate`` (on by default): workers create or upgrade the tables at connect, and
once the schema is current connecting needs no DDL privilege; off, missing tables raise core's
`SchemaNotInitializedError`, which names both fixes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import asynctasq_postgres
from asynctasq.drivers.base import OutgoingMessage
from asynctasq.errors import SchemaNotInitializedError
from asynctasq_postgres import LATEST_VERSION, PostgresDriver

DriverFactory = Callable[..., PostgresDriver]


def _message() -> OutgoingMessage:
    return OutgoingMessage(task_id=str(uuid.uuid4()), queue="q", payload=b"x")


@pytest.fixture
async def schema(admin: asyncpg.Connection[asyncpg.Record]) -> AsyncIterator[str]:
    """A schema name of this test's own, dropped afterwards."""
    name = f"atq_auto_{uuid.uuid4().hex[:10]}"
    yield name
    await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


async def test_the_default_creates_the_tables_at_connect(dsn: str, schema: str) -> None:
    driver = PostgresDriver(dsn, schema=schema, min_pool_size=1, max_pool_size=2)
    try:
        await driver.connect()
        assert await driver.schema_version() == LATEST_VERSION
        await driver.enqueue(_message())
        assert len(await driver.dequeue(["q"], limit=1, wait=0)) == 1
    finally:
        await driver.close()


async def test_once_current_connecting_needs_no_ddl_privilege(
    dsn: str, schema: str, admin: asyncpg.Connection[asyncpg.Record]
) -> None:
    owner = PostgresDriver(dsn, schema=schema, min_pool_size=1, max_pool_size=1)
    await owner.init_schema()
    await owner.close()
    role = f"atq_dml_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        # Table privileges only: no CREATE on the database or the schema.
        await admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        await admin.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        await admin.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
        parts = urlsplit(dsn)
        host = parts.netloc.rsplit("@", 1)[-1]
        worker_dsn = urlunsplit(parts._replace(netloc=f"{role}@{host}"))
        worker = PostgresDriver(worker_dsn, schema=schema, min_pool_size=1, max_pool_size=2)
        try:
            await worker.connect()  # auto_migrate on: finds the schema current
            await worker.enqueue(_message())
            assert len(await worker.dequeue(["q"], limit=1, wait=0)) == 1
        finally:
            await worker.close()
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE "{role}"')


async def test_without_it_missing_tables_name_both_fixes(make_driver: DriverFactory) -> None:
    driver = make_driver(auto_migrate=False)
    with pytest.raises(SchemaNotInitializedError) as caught:
        await driver.enqueue(_message())
    text = str(caught.value)
    names = driver.table_names
    assert f"{names.schema}.{names.queue_table}" in text
    assert "`asynctasq migrate`" in text and "auto_migrate=True" in text
    assert asynctasq_postgres.SchemaNotInitializedError is SchemaNotInitializedError
