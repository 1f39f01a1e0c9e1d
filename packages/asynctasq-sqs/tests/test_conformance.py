"""Core's driver conformance suite against SQS (moto on loopback)."""

from __future__ import annotations

from typing import Any

import pytest

from asynctasq.drivers.base import Driver
from asynctasq.testing import DriverConformance


class TestSQSConformance(DriverConformance):
    fifo = False  # standard queues: best-effort order
    priorities = False  # SQS has none: the driver refuses a priority (see the docs recipe)
    min_visibility_timeout = 1.0  # SQS leases are whole seconds
    # Delays and leases are whole seconds (rounded up), and a long poll notices a message
    # that turned visible by time at its next one-second tick.
    delay_slack = 2.5
    # SQS (and moto) accept an old receipt handle for a message re-leased elsewhere.
    stale_receipts_ignored = False
    # moto counts exactly; real SQS approximates (QueueStats.extra["approximate"]).
    exact_stats = True

    @pytest.fixture
    async def driver(self, make_driver: Any) -> Driver:
        # Own queue name prefix and queues created on demand; closed by make_driver.
        return await make_driver()
