"""Core's driver contract, against the real local Redis and a real local Redis Cluster."""

from __future__ import annotations

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance
from asynctasq_redis import RedisDriver


class TestRedisConformance(DriverConformance):
    push_logs = True  # a waiting read_log is an XREAD BLOCK, answered by the append

    @pytest.fixture
    async def driver(self, redis_driver: RedisDriver) -> Driver:
        return redis_driver


class TestRedisClusterConformance(DriverConformance):
    push_logs = True

    @pytest.fixture
    async def driver(self, cluster_driver: RedisDriver) -> Driver:
        return cluster_driver


def test_driver_satisfies_the_protocol() -> None:
    assert isinstance(RedisDriver(), Driver)
