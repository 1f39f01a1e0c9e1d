"""The dashboard in a real browser (headless system chromium driven by Playwright) against a
real ``asynctasq worker`` and ``asynctasq dashboard`` on Redis, under a key prefix of their
own: a task moves to succeeded on the overview without a reload, a dead letter retried from
its page runs, and a running task is cancelled from its page.

With ``ASYNCTASQ_DASHBOARD_SCREENSHOTS=docs/operations/img`` the run also saves the
documentation's screenshots there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dash_tasks as t
import pytest
from browser_testing import (
    CHROMIUM,
    REDIS_URL,
    SCREENSHOTS,
    TASKS_DIR,
    free_port,
    process,
    redis_args,
    require_browser,
    require_redis,
    wait_for_http,
)

pytestmark = pytest.mark.slow

LIVE = 30_000
"""Milliseconds a live change may take to show (updates come every 0.5 s)."""


@dataclass
class Stack:
    url: str
    prefix: str
    browser: Any
    flag_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A worker, the dashboard and one browser for the whole module."""
    require_browser()
    require_redis()
    tmp = tmp_path_factory.mktemp("dashboard")
    prefix = f"dashtest-{uuid.uuid4().hex[:8]}"
    port = free_port()
    worker_args = [
        "worker",
        "--import",
        "dash_tasks",
        "--allowed-root",
        str(TASKS_DIR),
        "--queues",
        t.QUEUE,
        "--no-live",
        "--concurrency",
        "4",
        "--set",
        "worker.heartbeat_interval=0.5",
        *redis_args(prefix),
    ]
    dashboard_args = ["dashboard", "--port", str(port), "--refresh", "0.5", *redis_args(prefix)]
    try:
        yield from _running(tmp, prefix, port, worker_args, dashboard_args)
    finally:
        asyncio.run(_clean(prefix))


def _running(
    tmp: Path, prefix: str, port: int, worker_args: list[str], dashboard_args: list[str]
) -> Iterator[Stack]:
    from playwright.sync_api import sync_playwright

    with (
        process(tmp / "worker.log", *worker_args),
        process(tmp / "dashboard.log", *dashboard_args) as dashboard,
        sync_playwright() as playwright,
    ):
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/workers", dashboard, tmp / "dashboard.log")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield Stack(url, prefix, browser, tmp)
        finally:
            browser.close()


async def _clean(prefix: str) -> None:
    from asynctasq_redis import RedisDriver

    driver = RedisDriver(url=REDIS_URL, prefix=prefix)
    await driver.connect()
    try:
        await driver.purge(t.QUEUE)
        await driver.purge_dead_letters()
    finally:
        await driver.close()


def dispatch(stack: Stack, *tasks: Any) -> str:
    """Queue `tasks` on the test's Redis prefix (tracked, as the tasks declare); return the
    last one's id.

    In a thread of its own: Playwright's sync API keeps an event loop on this one.
    """

    async def send() -> str:
        from asynctasq_redis import RedisDriver

        driver = RedisDriver(url=REDIS_URL, prefix=stack.prefix)
        try:
            ids = []
            for task in tasks:
                task._driver_override = driver
                ids.append(str(await task.dispatch()))
            return ids[-1]
        finally:
            await driver.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, send()).result(timeout=60)


@pytest.fixture
def page(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=LIVE)
    context = stack.browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(LIVE)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
    assert problems == []  # no script error, no CSP violation


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"dashboard-{name}.png"), full_page=True)


def test_the_overview_follows_a_task_to_succeeded(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(stack.url + "/")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "on")
    expect(page.locator("[data-region=workers] table.workers tbody tr")).to_have_count(1)
    # Forty tasks for the throughput chart, then the one followed.
    task_id = dispatch(stack, *[t.quick(n) for n in range(40)], t.quick(1000))
    # No reload: the live stream brings the row, then its new state.
    row = page.locator(f'[data-region=tasks] tr[data-task-id="{task_id}"]')
    expect(row.locator(".state")).to_have_text("succeeded")
    expect(page.locator(f'[data-region=queues] tr[data-queue="{t.QUEUE}"]')).to_be_visible()
    expect(page.locator("#rate")).to_contain_text("tasks/s")
    expect(page.locator("svg.chart polyline")).to_have_count(1)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    row.locator("a").first.click()
    expect(page.locator("#task-state")).to_have_text("succeeded")
    expect(page.locator("pre.result")).to_contain_text("2000")
    screenshot(page, "task")
    if SCREENSHOTS:  # a few more waves, so the docs' chart has a shape
        page.go_back()
        for wave in range(8):
            dispatch(stack, *[t.quick(n) for n in range(10 + 12 * (wave % 4))])
            page.wait_for_timeout(1500)
        dispatch(stack, t.slow(5), t.slow(5))
        page.wait_for_timeout(1500)
        screenshot(page, "overview")


def test_a_dead_letter_retried_from_its_page_runs(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    flag = stack.flag_dir / f"flag-{uuid.uuid4().hex[:6]}"
    task_id = dispatch(stack, t.needs_flag(str(flag)))
    page.goto(stack.url + "/dead-letters")
    row = page.locator(f'[data-region=letters] tr[data-task-id="{task_id}"]')
    expect(row).to_be_visible()  # dead-lettered while the page was open
    row.locator("a").first.click()
    expect(page.locator("#letter-error")).to_contain_text("the flag file")
    expect(page.locator("pre.traceback")).to_contain_text("RuntimeError")
    screenshot(page, "dead-letter")
    flag.write_text("go")
    page.locator("[data-region=letter] button.retry").click()
    # Redirected to the task, which runs again and succeeds this time.
    expect(page.locator(".notice")).to_contain_text("Retried 1 dead letter")
    expect(page.locator("#task-state")).to_have_text("succeeded")
    page.goto(f"{stack.url}/dead-letter?id={task_id}")
    expect(page.locator("[data-region=letter]")).to_contain_text("No dead letter has this id")


def test_a_running_task_is_cancelled_from_its_page(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    task_id = dispatch(stack, t.slow(60))
    page.goto(f"{stack.url}/task?id={task_id}")
    expect(page.locator("#task-state")).to_have_text("running")
    expect(page.locator("progress")).to_be_visible()
    page.goto(stack.url + "/workers")
    expect(page.locator(f'ul.running a:text-is("{task_id}")')).to_be_visible()
    screenshot(page, "workers")
    page.locator(f'ul.running a:text-is("{task_id}")').click()
    page.locator("button.cancel").click()
    expect(page.locator(".notice")).to_contain_text("Cancel requested")
    expect(page.locator("#task-state")).to_have_text("cancelled")
    expect(page.locator("button.cancel")).to_have_count(0)
