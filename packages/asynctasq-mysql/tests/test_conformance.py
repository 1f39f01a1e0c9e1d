"""The MySQL driver passes core's driver conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

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

    async def claim_peer(self, driver: Driver) -> Driver | None:
        peer = self.make_driver(max_pool_size=8)  # same tables, its own pool
        await peer.connect()
        return peer


def test_mysql_driver_satisfies_the_protocol() -> None:
    assert isinstance(MySQLDriver(), Driver)
