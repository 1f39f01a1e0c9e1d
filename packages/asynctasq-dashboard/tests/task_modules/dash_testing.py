"""Helpers for the dashboard's tests (on sys.path through conftest; not collected)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from asynctasq.drivers.base import Driver, Failure, OutgoingMessage
from asynctasq.testing.hostile import envelope

BASE = "http://127.0.0.1:8080"
HOSTILE = "<script>alert(1)</script>"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def dead_letter(
    driver: Driver,
    *,
    queue: str = "q",
    task: str = "app.tasks:job",
    message: str = "boom",
    traceback: str = "Traceback (most recent call last):\n  ...\nValueError: boom",
    args: list[Any] | None = None,
) -> str:
    """Put one dead letter on `driver`; return its task id."""
    task_id = str(uuid.uuid4())
    payload = envelope(task, args or [1, "two"])
    await driver.enqueue(OutgoingMessage(task_id, queue, payload))
    (delivery,) = await driver.dequeue([queue], limit=1, wait=0)
    await driver.dead_letter(delivery, Failure("builtins.ValueError", message, traceback))
    return task_id


async def csrf_token(client: httpx.AsyncClient, path: str = "/") -> str:
    """Open `path` (which sets the CSRF cookie) and return the token its forms carry."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    cookie = client.cookies.get("asynctasq_dashboard_csrf")
    assert cookie
    return cookie


def form_token(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF_FIELD.search(html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)
