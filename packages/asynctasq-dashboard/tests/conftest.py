"""Fixtures: a dashboard on an in-memory driver, reached through httpx's ASGI transport."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

TASKS_DIR = Path(__file__).parent / "task_modules"
if str(TASKS_DIR) not in sys.path:
    sys.path.insert(0, str(TASKS_DIR))

from dash_testing import BASE  # noqa: E402  (needs TASKS_DIR)

from asynctasq.drivers.memory import MemoryDriver  # noqa: E402
from asynctasq_dashboard import create_app  # noqa: E402


@pytest.fixture
def driver() -> MemoryDriver:
    return MemoryDriver()


@pytest.fixture
async def client(driver: MemoryDriver) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated dashboard (as on 127.0.0.1) with short live streams."""
    app = create_app(driver, refresh=0.05, live_lifetime=0.3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c
