"""Fixtures: the real MySQL/MariaDB server, and tables of its own for every test.

The server URL comes from ``ASYNCTASQ_TEST_MYSQL_DSN`` (default
``mysql://root@127.0.0.1:3306/test``). Unreachable server: tests skip, or fail under ``CI``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomysql
import pytest
from tests.server_choice import server_url

from asynctasq_mysql import MySQLDriver, parse_dsn

# The variable, else the local server, else a container when Docker answers (issue 19).
TEST_DSN = server_url("mysql")
WANTED_PACKET = 64 * 1024 * 1024  # enough for 16 MiB payloads, worst-case escaping included


async def _raw_connect(dsn: str, **kwargs: Any) -> Any:
    settings: dict[str, Any] = {"autocommit": True, **parse_dsn(dsn).connect_kwargs(), **kwargs}
    return await aiomysql.connect(**settings)


async def _prepare_server() -> int:
    conn = await _raw_connect(TEST_DSN)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT @@global.max_allowed_packet")
            (packet,) = await cursor.fetchone()
            if packet < WANTED_PACKET:
                # The test server's own setting (a stock MariaDB has 16 MiB): the 16 MiB
                # round-trip needs more, and drivers read it when they connect.
                try:
                    await cursor.execute(f"SET GLOBAL max_allowed_packet = {WANTED_PACKET}")
                    packet = WANTED_PACKET
                except aiomysql.Error:
                    pass
        return int(packet)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def mysql_server() -> int:
    """Check the server is up (skip or, under CI, fail); return its max_allowed_packet."""
    try:
        return asyncio.run(_prepare_server())
    except Exception as exc:
        reason = f"MySQL/MariaDB not reachable at {parse_dsn(TEST_DSN).redacted}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def mysql_dsn(mysql_server: int) -> str:
    """DSN of the test server (reachable)."""
    return TEST_DSN


@pytest.fixture
async def admin(mysql_dsn: str) -> AsyncIterator[Any]:
    """A separate autocommit `aiomysql.Connection` for setting up and inspecting."""
    conn = await _raw_connect(mysql_dsn)
    yield conn
    conn.close()


@pytest.fixture
def connect_raw(mysql_dsn: str) -> Callable[..., Any]:
    """``await connect_raw(**aiomysql_kwargs)``: a new connection to the test server."""

    async def connect(**kwargs: Any) -> Any:
        return await _raw_connect(mysql_dsn, **kwargs)

    return connect


@pytest.fixture
async def table_names(admin: Any) -> AsyncIterator[dict[str, str]]:
    """Table names no other test uses (``queue``, ``dead_letter``, ``migrations``).

    Whatever tables exist under these names afterwards are dropped.
    """
    suffix = uuid.uuid4().hex[:12]
    names = {
        "queue": f"tq_{suffix}",
        "dead_letter": f"dlq_{suffix}",
        "migrations": f"tq_{suffix}_migrations",
    }
    yield names
    async with admin.cursor() as cursor:
        await cursor.execute("SET SESSION sql_notes = 0")  # no "unknown table" warnings
        # migrations 2, 3 and 4
        derived = ["results", "statuses", "logs", "log_heads", "workers", "claims"]
        for name in [*names.values(), *(f"tq_{suffix}_{table}" for table in derived)]:
            await cursor.execute(f"DROP TABLE IF EXISTS `{name}`")


@pytest.fixture
async def make_driver(
    mysql_dsn: str, table_names: dict[str, str]
) -> AsyncIterator[Callable[..., MySQLDriver]]:
    """``make_driver(**settings)``: a driver on this test's tables, closed after the test."""
    made: list[MySQLDriver] = []

    def make(**settings: Any) -> MySQLDriver:
        defaults: dict[str, Any] = {
            "dsn": mysql_dsn,
            "queue_table": table_names["queue"],
            "dead_letter_table": table_names["dead_letter"],
            "min_pool_size": 1,
            "max_pool_size": 6,
        }
        driver = MySQLDriver(**{**defaults, **settings})
        made.append(driver)
        return driver

    yield make
    for driver in made:
        await driver.close()


@pytest.fixture
async def driver(make_driver: Callable[..., MySQLDriver]) -> MySQLDriver:
    """A connected driver on this test's tables."""
    driver = make_driver()
    await driver.connect()
    return driver
