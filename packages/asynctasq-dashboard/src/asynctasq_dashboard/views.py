"""GET handlers: a page rendered whole, and its live stream (server-sent events).

A broker failure renders the page's frame with the error (secrets masked) and status 503,
instead of a stack trace; the live stream reports it in place and keeps trying.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from asynctasq.redaction import redact_text
from asynctasq_cli.output import one_line
from asynctasq_dashboard import bounds
from asynctasq_dashboard.pages import PAGES, Page
from asynctasq_dashboard.rendering import base_context, templates
from asynctasq_dashboard.state import dashboard_of

PROBLEM = "problem"
"""The region every page has for a broker error."""


def describe_failure(exc: Exception) -> str:
    """One line saying what failed, secrets masked."""
    return bounds.clip(redact_text(f"{type(exc).__name__}: {one_line(exc)}"), bounds.MESSAGE)


async def load(request: Request, page: Page) -> tuple[dict[str, Any], bool]:
    """The page's context, and whether the broker answered."""
    context = base_context(request, _name(page))
    try:
        context.update(await page.load(request))
        return context, True
    except HTTPException:
        raise
    except Exception as exc:  # the broker's failure is shown, not raised at the viewer
        context["problem"] = describe_failure(exc)
        return context, False


def _name(page: Page) -> str:
    return next(name for name, p in PAGES.items() if p is page)


def page_handler(name: str) -> Any:
    """The GET handler of page `name`."""
    page = PAGES[name]

    async def handler(request: Request) -> Response:
        context, ok = await load(request, page)
        context["live_url"] = str(request.url_for("live")) + f"?page={name}&" + request.url.query
        template = page.template if ok else "unavailable.html"
        return templates.TemplateResponse(
            request, template, context, status_code=200 if ok else 503
        )

    handler.__name__ = name
    return handler


def render_regions(page: Page, context: dict[str, Any]) -> dict[str, str]:
    """Each live region of `page` rendered with `context` (the problem region too)."""
    env = templates.env
    out = {
        region: env.get_template(f"regions/{region}.html").render(context)
        for region in page.regions
    }
    out[PROBLEM] = env.get_template("regions/problem.html").render(context)
    return out


def _frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {orjson.dumps(data).decode()}\n\n".encode()


async def live(request: Request) -> Response:
    """``/live?page=NAME&...``: the page's regions, re-rendered every interval and sent
    when they changed, for `Dashboard.live_lifetime` seconds (the browser reconnects)."""
    dashboard = dashboard_of(request)
    name = request.query_params.get("page", "")
    if name not in PAGES:
        raise HTTPException(400, "unknown page")
    page = PAGES[name]
    if dashboard.live_now >= dashboard.max_live:
        # `retry:` tells EventSource when to come back.
        return Response("retry: 10000\n\n", media_type="text/event-stream", status_code=200)
    dashboard.live_now += 1

    async def stream() -> AsyncIterator[bytes]:
        sent: dict[str, str] = {}
        deadline = time.monotonic() + dashboard.live_lifetime
        try:
            yield f"retry: {int(dashboard.live_interval * 1000) + 1000}\n\n".encode()
            while time.monotonic() < deadline:
                context, _ = await load(request, page)
                changed = {}
                for region, html in render_regions(page, context).items():
                    digest = hashlib.blake2b(html.encode(), digest_size=16).hexdigest()
                    if sent.get(region) != digest:
                        sent[region] = digest
                        changed[region] = html
                yield _frame("regions", changed) if changed else b": idle\n\n"
                # A browser that leaves cancels this stream (StreamingResponse listens).
                await asyncio.sleep(dashboard.live_interval)
        finally:
            dashboard.live_now -= 1

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
    )


__all__ = ["describe_failure", "live", "load", "page_handler", "render_regions"]
