"""The MySQL driver passes core's driver conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance
from asynctasq_mysql import MySQLDriver


class TestMySQLConformance(DriverConformance):
    @pytest.fixture
    async def driver(self, make_driver: Callable[..., MySQLDriver]) -> AsyncIterator[Driver]:
        driver = make_driver()
        await driver.connect()
        yield driver
        await driver.close()


def test_mysql_driver_satisfies_the_protocol() -> None:
    assert isinstance(MySQLDriver(), Driver)
