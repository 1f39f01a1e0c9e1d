"""`create_app`: the dashboard as a Starlette application, to serve alone or mount."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from asynctasq.drivers.base import Driver
from asynctasq_dashboard import actions, views
from asynctasq_dashboard.auth import Auth, TokenAuth
from asynctasq_dashboard.guard import Guard
from asynctasq_dashboard.pages import PAGES
from asynctasq_dashboard.sampling import Sampler
from asynctasq_dashboard.state import Dashboard

PATHS = {
    "overview": "/",
    "queue": "/queue",
    "tasks": "/tasks",
    "task": "/task",
    "dead_letters": "/dead-letters",
    "dead_letter": "/dead-letter",
    "workers": "/workers",
    "schedules": "/schedules",
}


def _describe(driver: str | Driver | None) -> str:
    if driver is None:
        return "the configured driver"
    return driver if isinstance(driver, str) else type(driver).__name__


async def _http_error(request: Request, exc: Exception) -> Response:
    # Plain text: the detail is ours, but it may repeat part of a request.
    assert isinstance(exc, HTTPException)
    return PlainTextResponse(f"{exc.status_code}: {exc.detail}", status_code=exc.status_code)


def create_app(
    driver: str | Driver | None = None,
    *,
    auth: Auth | None = None,
    title: str | None = None,
    refresh: float = 2.0,
    live_lifetime: float = 300.0,
    max_live: int = 32,
) -> Starlette:
    """The dashboard as an ASGI application.

    Serve it with ``asynctasq dashboard`` or any ASGI server, or mount it in your own app::

        app.mount("/tasks", create_app(auth=TokenAuth(os.environ["DASHBOARD_TOKEN"])))

    Args:
        driver: The driver to watch: an instance, a name (``"redis"``), or None for the
            configured one (``asynctasq.init``, ``ASYNCTASQ_*``). Connected on first use.
        auth: `TokenAuth` or `BasicAuth`; None leaves the dashboard open to whoever can
            reach it (fine on 127.0.0.1; put it behind your own authentication when you
            mount it).
        title: What the header says is watched (default: the driver's name). Never put a
            secret here; ``asynctasq dashboard`` shows the driver with secrets masked.
        refresh: Seconds between two reads of the broker and two live updates.
        live_lifetime: Seconds a live stream lasts before the browser reconnects.
        max_live: Live streams served at once.

    Raises:
        ValueError: a non-positive `refresh`, `live_lifetime` or `max_live`.
    """
    for name, value in (("refresh", refresh), ("live_lifetime", live_lifetime)):
        if not value > 0:
            raise ValueError(f"create_app({name}=...) must be > 0, got {value!r}")
    if max_live < 1:
        raise ValueError(f"create_app(max_live=...) must be >= 1, got {max_live!r}")
    routes: list[Route | Mount] = [
        Route(path, views.page_handler(name), name=name) for name, path in PATHS.items()
    ]
    routes += [
        Route("/live", views.live, name="live"),
        Route("/task/cancel", actions.cancel, methods=["POST"], name="cancel"),
        Route("/dead-letters/retry", actions.retry, methods=["POST"], name="retry"),
        Route("/dead-letters/purge", actions.purge, methods=["POST"], name="purge"),
        Mount("/static", StaticFiles(packages=[("asynctasq_dashboard", "static")]), name="static"),
    ]
    if isinstance(auth, TokenAuth):
        routes += [
            Route("/login", actions.login_page, methods=["GET"], name="login"),
            Route("/login", actions.login, methods=["POST"], name="login_submit"),
        ]
    assert set(PATHS) == set(PAGES)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, auth=auth)],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.dashboard = Dashboard(
        driver=driver,
        title=title or _describe(driver),
        sampler=Sampler(refresh),
        live_interval=refresh,
        live_lifetime=live_lifetime,
        max_live=max_live,
    )
    app.state.auth = auth
    return app


__all__ = ["PATHS", "create_app"]
