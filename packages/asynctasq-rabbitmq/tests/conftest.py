"""Fixtures: a reachable RabbitMQ and drivers isolated per test (own exchange and prefix).

The broker URL comes from `ASYNCTASQ_TEST_RABBITMQ_URL` (loopback default). Without a broker
the tests skip, or fail when `CI` is set. Every test's queues and exchanges are deleted after.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from asynctasq_rabbitmq import RabbitMQDriver

RABBITMQ_URL = os.environ.get("ASYNCTASQ_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

DriverFactory = Callable[..., RabbitMQDriver]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The broker URL, or skip (fail under CI) when nothing listens there."""
    if not _reachable(RABBITMQ_URL):
        reason = f"RabbitMQ not reachable at {RABBITMQ_URL} (set ASYNCTASQ_TEST_RABBITMQ_URL)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return RABBITMQ_URL


@pytest.fixture
async def make_driver(rabbitmq_url: str) -> AsyncIterator[DriverFactory]:
    """Build drivers sharing one fresh namespace; all closed and their topology deleted after."""
    namespace = uuid.uuid4().hex[:10]
    settings: dict[str, Any] = {
        "url": rabbitmq_url,
        "exchange_name": f"asynctasq-test-{namespace}",
        "queue_prefix": f"t{namespace}.",
    }
    created: list[RabbitMQDriver] = []

    def factory(**overrides: Any) -> RabbitMQDriver:
        driver = RabbitMQDriver(**{**settings, **overrides})
        created.append(driver)
        return driver

    yield factory
    for driver in created:
        await driver.close()
    cleaner = RabbitMQDriver(**settings)
    try:
        await cleaner.delete_topology()
    finally:
        await cleaner.close()
