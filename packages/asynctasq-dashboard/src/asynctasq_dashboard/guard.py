"""The middleware in front of every page: security headers, authentication and the CSRF
cookie.

* Every response gets a Content-Security-Policy that allows scripts, styles and requests
  from the dashboard itself only (no inline script), ``X-Frame-Options: DENY``,
  ``nosniff`` and ``Referrer-Policy: same-origin`` (no referrer leaves the dashboard;
  same-origin POSTs keep their ``Origin``, which ``no-referrer`` would turn into ``null``).
* With an `Auth`, a request without valid credentials gets 401 (basic auth: the browser
  asks) or, for a browser page with token auth, a redirect to the login page.
* Each browser gets a random CSRF token in a ``SameSite=Strict``, HttpOnly cookie; every
  form repeats it in a hidden field and every POST handler checks the two match
  (`csrf.verified_form`). A POST whose ``Origin`` names another site is refused here.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asynctasq_dashboard.auth import REALM, Auth, BasicAuth

CSRF_COOKIE = "asynctasq_dashboard_csrf"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
PUBLIC_PATHS = ("/login", "/static/")
"""Paths served without credentials (the login page and the stylesheet it uses)."""


def cookie_path(scope: Scope) -> str:
    """The path the dashboard is mounted at (its cookies are sent there only)."""
    root = str(scope.get("root_path", "")).rstrip("/")
    return root or "/"


def local_path(scope: Scope) -> str:
    """The request's path inside the dashboard (without the mount point)."""
    path = str(scope.get("path", "/"))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _same_origin(conn: HTTPConnection) -> bool:
    origin = conn.headers.get("origin")
    if origin is None or origin == "null":
        # Browsers send Origin on every cross-site POST; without one this is not a browser
        # form from another site. The CSRF token is checked either way.
        return origin is None
    host = conn.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


class Guard:
    """ASGI middleware: see the module documentation.

    Args:
        app: The dashboard's routes.
        auth: The credentials required, or None (loopback-only use).
    """

    def __init__(self, app: ASGIApp, auth: Auth | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        csrf = conn.cookies.get(CSRF_COOKIE)
        fresh = None
        if not csrf or len(csrf) > 100:
            csrf = fresh = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = csrf
        secure = conn.url.scheme == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("cache-control", "no-store")
                if fresh is not None:
                    headers.append(
                        "set-cookie",
                        f"{CSRF_COOKIE}={fresh}; Path={cookie_path(scope)}; HttpOnly; "
                        f"SameSite=Strict{'; Secure' if secure else ''}",
                    )
            await send(message)

        refused = self._refusal(conn, scope)
        if refused is not None:
            await refused(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, conn: HTTPConnection, scope: Scope) -> Response | None:
        if conn.scope["method"] not in ("GET", "HEAD") and not _same_origin(conn):
            return PlainTextResponse("cross-site request refused", status_code=403)
        if self.auth is None or self.auth.allows(conn):
            return None
        path = local_path(scope)
        if path.startswith(PUBLIC_PATHS) and not isinstance(self.auth, BasicAuth):
            return None
        if isinstance(self.auth, BasicAuth):
            return PlainTextResponse(
                "authentication required", status_code=401, headers={"www-authenticate": REALM}
            )
        wants_page = conn.scope["method"] == "GET" and "text/html" in conn.headers.get("accept", "")
        if wants_page:
            query = conn.url.query
            target = path + (f"?{query}" if query else "")
            login = f"{cookie_path(scope).rstrip('/')}/login?next={quote(target, safe='')}"
            return RedirectResponse(login, status_code=303)
        return PlainTextResponse(
            "authentication required", status_code=401, headers={"www-authenticate": "Bearer"}
        )


__all__ = ["CSRF_COOKIE", "SECURITY_HEADERS", "Guard", "cookie_path", "local_path"]
