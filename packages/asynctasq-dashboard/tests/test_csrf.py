"""State-changing requests: POST only, with the page's CSRF token, from the same site."""

from __future__ import annotations

import httpx
import pytest
from dash_testing import BASE, dead_letter, form_token

from asynctasq.drivers.memory import MemoryDriver
from asynctasq_dashboard import create_app
from asynctasq_dashboard.app import PATHS


def post_routes() -> list[str]:
    app = create_app(MemoryDriver())
    return sorted(
        r.path for r in app.routes if "POST" in (getattr(r, "methods", None) or ()) and r.path
    )


def test_every_state_changing_route_is_a_post() -> None:
    assert post_routes() == ["/dead-letters/purge", "/dead-letters/retry", "/task/cancel"]


@pytest.mark.parametrize("path", post_routes())
async def test_a_post_without_the_token_is_refused(
    client: httpx.AsyncClient, driver: MemoryDriver, path: str
) -> None:
    task_id = await dead_letter(driver)
    await client.get("/")  # the browser has its CSRF cookie; the form lacks the token
    reply = await client.post(path, data={"id": task_id, "all": "yes", "confirm": "yes"})
    assert reply.status_code == 403
    assert "CSRF" in reply.text
    wrong = await client.post(path, data={"id": task_id, "csrf_token": "guess"})
    assert wrong.status_code == 403
    assert [d.task_id for d in await driver.list_dead_letters()] == [task_id]


async def test_a_post_without_the_cookie_is_refused(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    task_id = await dead_letter(driver)
    token = form_token((await client.get(f"/dead-letter?id={task_id}")).text)
    client.cookies.clear()  # another site's form can send the field but not the cookie
    reply = await client.post("/dead-letters/retry", data={"id": task_id, "csrf_token": token})
    assert reply.status_code == 403
    assert len(await driver.list_dead_letters()) == 1


async def test_the_page_token_retries_a_dead_letter(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    task_id = await dead_letter(driver)
    page = await client.get(f"/dead-letter?id={task_id}")
    reply = await client.post(
        "/dead-letters/retry", data={"id": task_id, "csrf_token": form_token(page.text)}
    )
    assert reply.status_code == 303
    assert reply.headers["location"].startswith(f"{BASE}/task?id={task_id}&done=retried")
    assert await driver.list_dead_letters() == []
    assert (await driver.stats(["q"]))[0].ready == 1


async def test_a_cross_site_post_is_refused_even_with_the_token(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    task_id = await dead_letter(driver)
    token = form_token((await client.get(f"/dead-letter?id={task_id}")).text)
    reply = await client.post(
        "/dead-letters/purge",
        data={"id": task_id, "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert reply.status_code == 403
    same = await client.post(
        "/dead-letters/purge", data={"id": task_id, "csrf_token": token}, headers={"origin": BASE}
    )
    assert same.status_code == 303
    assert await driver.list_dead_letters() == []


async def test_a_get_changes_nothing(client: httpx.AsyncClient, driver: MemoryDriver) -> None:
    task_id = await dead_letter(driver)
    for path in ("/dead-letters/retry", "/dead-letters/purge", "/task/cancel"):
        reply = await client.get(f"{path}?id={task_id}")
        assert reply.status_code == 405
    assert len(await driver.list_dead_letters()) == 1


async def test_purging_a_whole_queue_needs_the_confirmation(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    await dead_letter(driver)
    token = form_token((await client.get("/dead-letters")).text)
    refused = await client.post("/dead-letters/purge", data={"queue": "q", "csrf_token": token})
    assert refused.status_code == 400
    assert len(await driver.list_dead_letters()) == 1
    done = await client.post(
        "/dead-letters/purge", data={"queue": "q", "confirm": "yes", "csrf_token": token}
    )
    assert done.status_code == 303
    assert "done=purged&n=1" in done.headers["location"]
    assert await driver.list_dead_letters() == []


async def test_an_oversized_form_is_refused(client: httpx.AsyncClient) -> None:
    token = form_token((await client.get("/dead-letters")).text)
    reply = await client.post(
        "/dead-letters/retry", data={"queue": "x" * 20_000, "csrf_token": token}
    )
    assert reply.status_code == 413


def test_every_page_has_a_route() -> None:
    app = create_app(MemoryDriver())
    paths = {getattr(r, "path", None) for r in app.routes}
    assert set(PATHS.values()) <= paths


async def test_cancelling_what_is_not_a_task_id_is_a_bad_request(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    token = form_token((await client.get("/dead-letters")).text)
    reply = await client.post("/task/cancel", data={"id": "27ef2ad8-d2d2", "csrf_token": token})
    assert reply.status_code == 400
    assert "not a task id" in reply.text
    entries, _ = await driver.read_log("cancels", None, wait=0)
    assert entries == []  # no request stored for an id that can never match
