"""Core's driver conformance suite against RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import ClassVar

import pytest

from asynctasq.drivers.base import Delivery, Driver
from asynctasq.testing import DriverConformance
from asynctasq_rabbitmq import RabbitMQDriver

_factories: dict[int, Callable[..., RabbitMQDriver]] = {}


class TestRabbitMQConformance(DriverConformance):
    # Classic work queues are declared with x-max-priority: the ordering tests run.
    priorities: ClassVar[bool] = True
    # Leases end when the connection closes, not by time: `expire_leases` drops it.
    lease_expiry: ClassVar[bool] = False
    # AMQP reports ready counts and consumers only: `in_flight` is this process's share.
    exact_stats: ClassVar[bool] = False

    @pytest.fixture
    async def driver(self, make_driver: Callable[..., RabbitMQDriver]) -> AsyncIterator[Driver]:
        driver = make_driver()
        _factories[id(driver)] = make_driver
        await driver.connect()
        yield driver
        _factories.pop(id(driver), None)

    async def expire_leases(self, driver: Driver, deliveries: Sequence[Delivery]) -> Driver:
        """Drop the connection (the broker returns what it held) and connect a new driver."""
        assert isinstance(driver, RabbitMQDriver)
        factory = _factories[id(driver)]
        await driver.close()
        fresh = factory()
        _factories[id(fresh)] = factory
        await fresh.connect()
        return fresh


class TestRabbitMQQuorumConformance(TestRabbitMQConformance):
    """The same contract with quorum work queues (`queue_type="quorum"`; classic is the
    default). Quorum queues do not order by priorities 0-9 (none before RabbitMQ 4.0, two
    non-strict levels since): the driver refuses a priority other than 0 for them."""

    priorities: ClassVar[bool] = False

    @pytest.fixture
    async def driver(self, make_driver: Callable[..., RabbitMQDriver]) -> AsyncIterator[Driver]:
        def quorum(**overrides: object) -> RabbitMQDriver:
            return make_driver(queue_type="quorum", **overrides)

        driver = quorum()
        _factories[id(driver)] = quorum
        await driver.connect()
        yield driver
        _factories.pop(id(driver), None)
