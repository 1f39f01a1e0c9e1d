"""What the pages show: hostile broker values as text, bounded; no secret; security headers;
live regions over server-sent events; mounting under a prefix."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import pytest
from dash_testing import BASE, HOSTILE, dead_letter, envelope, form_token
from starlette.applications import Starlette
from starlette.routing import Mount

from asynctasq.drivers.base import Failure, OutgoingMessage, QueueStats
from asynctasq.drivers.memory import MemoryDriver
from asynctasq.lifecycle import TaskState, TaskStatus, WorkerInfo
from asynctasq.lifecycle.control import write_for
from asynctasq_dashboard import create_app
from asynctasq_dashboard.bounds import MESSAGE, ROWS, TRACEBACK
from asynctasq_dashboard.guard import SECURITY_HEADERS

PAGES = ["/", "/tasks", "/dead-letters", "/workers", "/schedules", "/task"]


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in [*PAGES, "/static/app.js", "/nope"]:
        reply = await client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers[name] == value, path
    csp = SECURITY_HEADERS["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert SECURITY_HEADERS["x-frame-options"] == "DENY"


async def test_pages_carry_no_inline_script(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        html = (await client.get(path)).text
        assert "<script>" not in html, path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path  # no inline event handlers
        assert 'style="' not in html, path


async def hostile_broker(driver: MemoryDriver) -> str:
    task_id = await dead_letter(
        driver,
        queue=HOSTILE,
        task=f"app:{HOSTILE}",
        message=f'<img src=x onerror="alert(2)"> {"m" * (MESSAGE * 3)}',
        traceback=f"Traceback\n{HOSTILE}\n" + "t" * (TRACEBACK * 3),
        args=[HOSTILE, {"k": "</pre><script>alert(3)</script>"}],
    )
    status = TaskStatus(
        task_id=task_id,
        state=TaskState.FAILED,
        task_name=f"app:{HOSTILE}",
        queue=HOSTILE,
        attempts=3,
        error_type=HOSTILE,
        error_message=f"{HOSTILE}\u202e\x1b[31m",
        progress=0.5,
        progress_message=HOSTILE,
    )
    await driver.write_statuses([write_for(status, 60)])
    return task_id


async def test_hostile_names_and_errors_render_as_text(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    task_id = await hostile_broker(driver)
    quoted = httpx.QueryParams({"name": HOSTILE})
    for path in [
        "/",
        f"/queue?{quoted}",
        "/tasks",
        "/dead-letters",
        f"/dead-letter?id={task_id}",
        f"/task?id={task_id}",
    ]:
        reply = await client.get(path)
        assert reply.status_code == 200, path
        html = reply.text
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        # Invisible characters are shown as escapes, not passed on.
        assert "\u202e" not in html and "\x1b" not in html, path
        # Bounded: a huge message or traceback costs a bounded page.
        assert len(html) < 2 * TRACEBACK + 4 * MESSAGE + 20_000, path
    letter = (await client.get(f"/dead-letter?id={task_id}")).text
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)" in letter
    assert "\\u202e" in (await client.get(f"/task?id={task_id}")).text


@pytest.mark.parametrize("size", [100, 2 << 20])
async def test_a_stored_result_that_is_no_json_shows_invisible_characters_as_escapes(
    client: httpx.AsyncClient, driver: MemoryDriver, size: int
) -> None:
    """Unreadable or oversized result bytes are shown like every other field."""
    task_id = str(uuid.uuid4())
    raw = b"not json \x1b[31m \xe2\x80\xae evil \x07"
    await driver.store_result(task_id, raw + b"x" * (size - len(raw)), 60)
    html = (await client.get(f"/task?id={task_id}")).text
    assert "evil" in html
    assert "\u202e" not in html and "\x1b" not in html and "\x07" not in html


async def test_forged_worker_records_cost_a_bounded_page(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    # Anyone who can write to the broker can add worker records, each naming many queues.
    now = datetime.now(UTC)
    for n in range(500):
        info = WorkerInfo(f"w{n:03}", "h", 1, tuple(f"q{i}" for i in range(1000)), 4, "0", now, now)
        await driver.heartbeat_worker(info.worker_id, info.encode(), 60)
    for path in ["/", "/workers"]:
        html = (await client.get(path)).text
        assert html.count('<td class="n">0 / 4') == ROWS, path
        assert f"The first {ROWS} of 500 live workers" in html, path
        assert len(html) < 400_000, path


async def test_forged_huge_ids_cost_a_bounded_page(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    # Links and forms carry an id; a forged one of 200,000 characters is carried cut.
    for n in range(20):
        task_id = f"{n:02}" + "i" * 200_000
        await driver.enqueue(OutgoingMessage(task_id, "big", envelope("app.tasks:job", [1])))
    for delivery in await driver.dequeue(["big"], limit=100, wait=0):
        await driver.dead_letter(delivery, Failure("app.Boom", "boom", "Traceback"))
    for path in ["/dead-letters", "/queue?name=big", "/"]:
        reply = await client.get(path)
        assert reply.status_code == 200, path
        assert len(reply.text) < 400_000, (path, len(reply.text))


async def test_no_secret_is_rendered() -> None:
    class Failing(MemoryDriver):
        async def queue_names(self) -> list[str]:
            raise ConnectionError("cannot reach redis://ops:hunter2@10.0.0.5:6379/0")

        async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
            raise ConnectionError("dsn=postgresql://app:hunter2@db/x password=hunter2")

    app = create_app(Failing())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        reply = await c.get("/")
        assert reply.status_code == 503
        assert "cannot reach" in reply.text
        assert "hunter2" not in reply.text
        queue = await c.get("/queue?name=q")
        assert queue.status_code == 503
        assert "hunter2" not in queue.text


async def test_the_task_page_shows_status_result_and_dead_letter(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    task_id = await dead_letter(driver, message="it broke")
    await driver.store_result(task_id, b'{"error": ["builtins.ValueError", "it broke"]}', 60)
    html = (await client.get(f"/task?id={task_id}")).text
    assert "it broke" in html
    assert 'class="result result-error"' in html
    assert "Retry" in html
    unknown = (await client.get("/task?id=nope")).text
    assert "Nothing is known of this id" in unknown


async def test_the_live_stream_sends_changed_regions(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    await hostile_broker(driver)
    reply = await client.get("/live?page=overview")
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in reply.text.split("\n\n") if f.startswith("event: regions")]
    assert frames, reply.text
    first = json.loads(frames[0].split("data: ", 1)[1])
    assert set(first) == {"chart", "queues", "workers", "tasks", "problem"}
    assert "&lt;script&gt;" in first["queues"]
    assert "<script>" not in first["queues"]
    # Unchanged regions are not sent again.
    for later in frames[1:]:
        assert "queues" not in json.loads(later.split("data: ", 1)[1])


async def test_live_streams_are_capped(driver: MemoryDriver) -> None:
    app = create_app(driver, max_live=1, live_lifetime=0.3, refresh=0.05)
    app.state.dashboard.live_now = 1  # one stream already served
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        reply = await c.get("/live?page=overview")
        assert reply.text.startswith("retry: ")
        assert "event:" not in reply.text


async def test_mounted_under_a_prefix(driver: MemoryDriver) -> None:
    task_id = await dead_letter(driver)
    outer = Starlette(routes=[Mount("/ops/tasks", app=create_app(driver))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url=BASE) as c:
        page = await c.get("/ops/tasks/dead-letters")
        assert page.status_code == 200
        assert 'href="http://127.0.0.1:8080/ops/tasks/static/app.css"' in page.text
        assert "Path=/ops/tasks;" in page.headers["set-cookie"]
        assert (await c.get("/ops/tasks/static/app.css")).status_code == 200
        token = form_token(page.text)
        done = await c.post(
            "/ops/tasks/dead-letters/retry", data={"id": task_id, "csrf_token": token}
        )
        assert done.status_code == 303
        assert done.headers["location"].startswith(f"{BASE}/ops/tasks/task?id={task_id}")


@pytest.mark.parametrize(
    ("path", "status"),
    [("/queue", 400), ("/queue?name=" + "x" * 2000, 400), ("/tasks?state=nope", 400)],
)
async def test_bad_parameters_say_what_is_wrong(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    reply = await client.get(path)
    assert reply.status_code == status
    assert "parameter" in reply.text or "state" in reply.text


async def test_a_forged_id_longer_than_a_page_accepts_links_to_nothing(
    client: httpx.AsyncClient, driver: MemoryDriver
) -> None:
    # A forged dead letter whose id starts with a real one's: its link must not open (and
    # its forms must not act on) the real one, whatever the first characters it shares.
    from urllib.parse import parse_qs, urlsplit

    from asynctasq_dashboard.bounds import PARAM

    real = "r" * PARAM
    for task_id in (real, real + "forged"):
        await driver.enqueue(OutgoingMessage(task_id, "big", envelope("app.tasks:job", [1])))
    for delivery in await driver.dequeue(["big"], limit=10, wait=0):
        await driver.dead_letter(delivery, Failure("app.Boom", "boom", "Traceback"))
    html = (await client.get("/dead-letters")).text
    ids = [
        parse_qs(urlsplit(href).query)["id"][0]
        for href in re.findall(r'href="([^"]*/dead-letter\?id=[^"]*)"', html)
    ]
    assert ids.count(real) == 1, [len(i) for i in ids]
    for task_id in ids:
        reply = await client.get("/dead-letter", params={"id": task_id})
        assert reply.status_code == (200 if task_id == real else 400)
