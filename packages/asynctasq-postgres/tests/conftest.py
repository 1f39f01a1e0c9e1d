"""Fixtures: a real PostgreSQL server, one throw-away schema per driver, dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from tests.server_choice import server_url

from asynctasq_postgres import PostgresDriver

# Resolved at import, so xdist's controller starts any container before its workers (issue 19).
server_url("postgres")

DriverFactory = Callable[..., PostgresDriver]


def postgres_dsn() -> str:
    """The server the tests use (``ASYNCTASQ_TEST_POSTGRES_DSN``, else loopback, else a
    container when Docker answers)."""
    return server_url("postgres")


def unique_name(prefix: str) -> str:
    """A fresh identifier (schema, table, application name) for one test."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def _probe(dsn: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=3)
    await connection.close()


@pytest.fixture(scope="session")
def dsn() -> str:
    """The test server's DSN; skips (fails under CI) when the server is unreachable."""
    url = postgres_dsn()
    try:
        asyncio.run(_probe(url))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL unreachable at ASYNCTASQ_TEST_POSTGRES_DSN ({exc!r})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
async def admin(dsn: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A plain connection for looking at tables behind the driver's back."""
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def make_driver(dsn: str) -> AsyncIterator[DriverFactory]:
    """Build drivers isolated in a fresh schema each (or a given one); all are closed and
    their schemas dropped at teardown. Schema creation is the test's business
    (``await driver.init_schema()``) unless ``auto_migrate=True`` is passed."""
    drivers: list[PostgresDriver] = []
    schemas: set[str] = set()

    def factory(**settings: Any) -> PostgresDriver:
        settings.setdefault("schema", unique_name("atq_test"))
        settings.setdefault("min_pool_size", 1)
        settings.setdefault("max_pool_size", 4)
        settings.setdefault("application_name", unique_name("atq_test"))
        settings.setdefault("auto_migrate", False)  # the tests create their tables
        driver = PostgresDriver(settings.pop("dsn", dsn), **settings)
        drivers.append(driver)
        schemas.add(settings["schema"])
        return driver

    yield factory
    for driver in drivers:
        await driver.close()
    connection = await asyncpg.connect(dsn)
    try:
        for schema in schemas:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture
async def driver(make_driver: DriverFactory) -> PostgresDriver:
    """A connected driver with its tables created, in its own schema."""
    created = make_driver()
    await created.init_schema()
    return created
