"""Core's driver contract, run against a real PostgreSQL server."""

from __future__ import annotations

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

    @pytest.fixture
    async def driver(  # type: ignore[override]
        self, make_driver: Callable[..., PostgresDriver]
    ) -> Driver:
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
