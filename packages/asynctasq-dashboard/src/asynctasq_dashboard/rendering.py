"""Templates: Jinja2 with autoescaping always on, and the filters that bound what a page
shows of each value read from the broker."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from asynctasq.redaction import redact_text
from asynctasq_dashboard import bounds

NOTICES = {
    "retried": "Retried {n} dead letter(s): back on their queues, ready now.",
    "purged": "Deleted {n} dead letter(s).",
    "requested": "Cancel requested: a queued task will not run, a running one is being stopped.",
    "already-finished": "The task had already finished: nothing changed.",
    "none": "No dead letter matched: nothing changed.",
}
"""What a page says after an action (chosen by a fixed code in the URL, never free text)."""


def when(moment: datetime | None) -> str:
    """A time in the server's local zone, to the second."""
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def ago(moment: datetime | None) -> str:
    """``4s ago``, ``3m ago``, ``2h ago``."""
    if moment is None:
        return ""
    seconds = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def percent(fraction: float | None) -> str:
    """``0.428`` -> ``42%`` (rounded down: 100% means done)."""
    return "" if fraction is None else f"{math.floor(round(fraction * 100, 6))}%"


def first_line(text: object, width: int = 100) -> str:
    """The first line of `text`, cut to `width` characters."""
    value = str(text or "").strip()
    line = value.splitlines()[0] if value else ""
    return bounds.clip(line, width)


def environment() -> jinja2.Environment:
    """The template environment: package templates, autoescape on every template."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("asynctasq_dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        clip=bounds.clip,
        message=lambda text: bounds.clip(text, bounds.MESSAGE, multiline=True),
        tail=bounds.tail,
        when=when,
        ago=ago,
        percent=percent,
        first_line=first_line,
        redact=redact_text,
        ref=bounds.ref,
        # Every link's parameter is a queue name or task id from the broker: carried cut to
        # what a page accepts, so a huge forged one costs no huge page.
        urlencode=lambda value: jinja2.filters.do_urlencode(bounds.ref(value)),
    )
    env.globals["ROWS"] = bounds.ROWS  # the most rows a table shows
    env.globals["QUEUES"] = bounds.QUEUES  # the most queues read per refresh
    return env


templates = Jinja2Templates(env=environment())


def notice(request: Request) -> str | None:
    """The sentence for the ``done`` code in the URL, if any."""
    code = request.query_params.get("done")
    if code not in NOTICES:
        return None
    try:
        count = max(0, int(request.query_params.get("n", "0")[:12]))
    except ValueError:
        count = 0
    return NOTICES[code].format(n=f"{count:,}")


def base_context(request: Request, page: str) -> dict[str, Any]:
    """What every template needs: the request (for ``url_for``), the CSRF token, the page."""
    return {
        "request": request,
        "page": page,
        "title": request.app.state.dashboard.title,
        "csrf_token": request.scope.get("state", {}).get("csrf_token", ""),
        "notice": notice(request),
        "problem": None,
    }


__all__ = ["NOTICES", "base_context", "environment", "templates", "when"]
