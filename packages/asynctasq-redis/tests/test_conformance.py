"""Core's driver contract, against the real local Redis and a real local Redis Cluster."""

from __future__ import annotations

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance
from asynctasq_redis import RedisDriver


async def _peer(driver: Driver) -> Driver:
    """A second driver (its own connection pool) on the same server and prefix."""
    assert isinstance(driver, RedisDriver)
    peer = RedisDriver(url=driver.settings.url, prefix=driver.prefix)
    await peer.connect()
    return peer


class TestRedisConformance(DriverConformance):
    push_logs = True  # a waiting read_log is an XREAD BLOCK, answered by the append

    @pytest.fixture
    async def driver(self, redis_driver: RedisDriver) -> Driver:
        return redis_driver

    async def claim_peer(self, driver: Driver) -> Driver | None:
        return await _peer(driver)


class TestRedisClusterConformance(DriverConformance):
    push_logs = True

    @pytest.fixture
    async def driver(self, cluster_driver: RedisDriver) -> Driver:
        return cluster_driver

    async def claim_peer(self, driver: Driver) -> Driver | None:
        return await _peer(driver)


def test_driver_satisfies_the_protocol() -> None:
    assert isinstance(RedisDriver(), Driver)
