from collections.abc import AsyncIterator

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance, MemoryDriver


class TestMemoryConformance(DriverConformance):
    @pytest.fixture
    async def driver(self) -> AsyncIterator[Driver]:
        driver = MemoryDriver()
        await driver.connect()
        yield driver
        await driver.close()


def test_memory_driver_satisfies_the_protocol() -> None:
    assert isinstance(MemoryDriver(), Driver)
