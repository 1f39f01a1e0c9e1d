"""The SQLite driver passes core's driver conformance suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance
from asynctasq_sqlite import SqliteDriver


class TestSqliteConformance(DriverConformance):
    priorities = True  # ordered by the dequeue since schema version 5: the ordering tests run

    @pytest.fixture
    async def driver(self, tmp_path: Path) -> AsyncIterator[Driver]:
        driver = SqliteDriver(path=str(tmp_path / "conformance.db"))
        await driver.connect()
        yield driver
        await driver.close()

    async def claim_peer(self, driver: Driver) -> Driver | None:
        assert isinstance(driver, SqliteDriver)
        peer = SqliteDriver(path=driver.path)  # its own connection and thread
        await peer.connect()
        return peer

    async def unmigrated_drivers(self, driver: Driver, count: int) -> list[Driver] | None:
        assert isinstance(driver, SqliteDriver)
        path = Path(driver.path).with_name(f"race-{uuid.uuid4().hex[:8]}.db")
        return [SqliteDriver(path=str(path)) for _ in range(count)]


def test_sqlite_driver_satisfies_the_protocol() -> None:
    assert isinstance(SqliteDriver(), Driver)
