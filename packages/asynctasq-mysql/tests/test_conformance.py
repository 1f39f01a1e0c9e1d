"""The MySQL driver passes core's driver conformance suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance
from asynctasq_mysql import MySQLDriver


class TestMySQLConformance(DriverConformance):
    make_driver: Callable[..., MySQLDriver]

    @pytest.fixture
    async def driver(self, make_driver: Callable[..., MySQLDriver]) -> AsyncIterator[Driver]:
        self.make_driver = make_driver  # for claim_peer
        driver = make_driver()
        await driver.connect()
        yield driver
        await driver.close()

    async def unmigrated_drivers(self, driver: Driver, count: int) -> list[Driver] | None:
        # Tables of their own (unmigrated), dropped by the `race_tables` fixture.
        queue = f"race_{uuid.uuid4().hex[:12]}"
        self.race_prefixes.append(queue)
        return [
            self.make_driver(
                queue_table=queue, dead_letter_table=f"{queue}_dlq", auto_migrate=False
            )
            for _ in range(count)
        ]

    @pytest.fixture(autouse=True)
    async def race_tables(self, admin: Any) -> AsyncIterator[None]:
        self.race_prefixes: list[str] = []
        yield
        async with admin.cursor() as cursor:
            for prefix in self.race_prefixes:
                await cursor.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND LEFT(table_name, %s) = %s",
                    (len(prefix), prefix),
                )
                for (table,) in await cursor.fetchall():
                    await cursor.execute(f"DROP TABLE IF EXISTS `{table}`")

    async def claim_peer(self, driver: Driver) -> Driver | None:
        peer = self.make_driver(max_pool_size=8)  # same tables, its own pool
        await peer.connect()
        return peer


def test_mysql_driver_satisfies_the_protocol() -> None:
    assert isinstance(MySQLDriver(), Driver)
