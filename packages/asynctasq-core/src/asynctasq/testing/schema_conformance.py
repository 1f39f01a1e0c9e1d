"""Conformance tests of `SchemaManager`, part of `DriverConformance`; they skip for a driver
without the capability.

The race test needs drivers on a store that no migration has touched yet: a subclass
provides them by overriding `unmigrated_drivers` (the default returns None and the race
test skips).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from asynctasq.drivers.base import Driver, OutgoingMessage, SchemaManager

RACERS = 3
"""Drivers (each with connections of its own) that run `init_schema` at once in the race."""


class SchemaConformance:
    """The `SchemaManager` contract (mixed into `DriverConformance`)."""

    @staticmethod
    def _schema(driver: Driver) -> SchemaManager:
        if not isinstance(driver, SchemaManager):
            pytest.skip(f"{type(driver).__name__} keeps no schema")
        return driver

    async def unmigrated_drivers(self, driver: Driver, count: int) -> list[Driver] | None:
        """`count` new drivers sharing one store of their own (tables, schema or file) that
        no migration has touched yet, built so that connecting does not migrate
        (``auto_migrate=False`` where the driver has it); the test closes them.

        None (the default): the fixture cannot make them, and the race test skips.
        """
        return None

    def test_migration_sql_is_a_script(self, driver: Driver) -> None:
        sql = self._schema(driver).migration_sql()
        assert isinstance(sql, str)
        assert sql.strip(), "migration_sql() returned no SQL"

    async def test_init_schema_is_idempotent(self, driver: Driver) -> None:
        manager = self._schema(driver)
        first = await manager.init_schema()
        assert first == sorted(set(first)), f"versions not ascending or repeated: {first}"
        assert await manager.init_schema() == []
        assert await manager.init_schema() == []
        # The schema still serves the queue after the repeated calls.
        queue = f"conf-schema-{uuid.uuid4().hex[:8]}"
        await driver.enqueue(OutgoingMessage(task_id=str(uuid.uuid4()), queue=queue, payload=b"{}"))
        assert len(await driver.dequeue([queue], limit=1, wait=2.0)) == 1

    async def test_concurrent_init_schema_applies_each_version_once(self, driver: Driver) -> None:
        self._schema(driver)
        racers = await self.unmigrated_drivers(driver, RACERS)
        if racers is None:
            pytest.skip(f"{type(self).__name__} provides no unmigrated_drivers")
        try:
            managers = [self._schema(racer) for racer in racers]
            results = await asyncio.wait_for(
                asyncio.gather(*(manager.init_schema() for manager in managers)), 120
            )
            applied = [version for result in results for version in result]
            assert applied, "no racer applied anything to a store no migration had touched"
            assert len(applied) == len(set(applied)), f"a version applied twice: {results}"
            for result in results:
                assert result == sorted(result), f"versions out of order: {results}"
            assert sorted(applied) == list(range(1, max(applied) + 1)), results
            for manager in managers:
                assert await manager.init_schema() == []
            # Every racer sees the one schema: what one enqueues another dequeues.
            queue = f"conf-schema-{uuid.uuid4().hex[:8]}"
            await racers[0].enqueue(
                OutgoingMessage(task_id=str(uuid.uuid4()), queue=queue, payload=b"{}")
            )
            assert len(await racers[-1].dequeue([queue], limit=1, wait=2.0)) == 1
        finally:
            for racer in racers:
                await racer.close()


__all__ = ["SchemaConformance"]
