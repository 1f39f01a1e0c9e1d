"""Core's driver contract, run against a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance
from asynctasq_postgres import PostgresDriver


class TestPostgresConformance(DriverConformance):
    """Every contract test, each in a fresh schema that is dropped afterwards."""

    min_visibility_timeout = 1.0
    delay_slack = 0.5
    push_logs = True

    make_driver: Callable[..., PostgresDriver]

    @pytest.fixture
    async def driver(  # type: ignore[override]
        self, make_driver: Callable[..., PostgresDriver]
    ) -> Driver:
        self.make_driver = make_driver  # for unmigrated_drivers
        created = make_driver()
        await created.init_schema()
        await created.connect()
        return created

    async def claim_peer(self, driver: Driver) -> Driver | None:
        assert isinstance(driver, PostgresDriver)
        names = driver.table_names
        peer = PostgresDriver(
            driver._dsn,
            schema=names.schema,
            queue_table=names.queue_table,
            dead_letter_table=names.dead_letter_table,
            min_pool_size=1,
            max_pool_size=8,
        )
        await peer.connect()
        return peer

    async def unmigrated_drivers(self, driver: Driver, count: int) -> list[Driver] | None:
        schema = f"atq_race_{uuid.uuid4().hex[:10]}"  # dropped by make_driver's teardown
        return [
            self.make_driver(schema=schema, auto_migrate=False, max_pool_size=2)
            for _ in range(count)
        ]
