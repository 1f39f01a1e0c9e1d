"""Reading a POSTed form, bounded, with its CSRF token checked.

Forms are ``application/x-www-form-urlencoded`` and small, so they are parsed with the
standard library (no multipart parser to install or to feed hostile bodies to).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request

from asynctasq_dashboard.guard import CSRF_COOKIE

MAX_FORM_BYTES = 16 * 1024
"""The largest form body read; the dashboard's forms carry an id or a queue name."""
MAX_FIELDS = 32
FIELD = "csrf_token"
"""The hidden form field that repeats the CSRF cookie."""


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of `request` (the last value of a repeated field wins).

    Raises:
        HTTPException: 413 for a body over `MAX_FORM_BYTES`, 415 for another content type.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "expected a form (application/x-www-form-urlencoded)")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"form over {MAX_FORM_BYTES} bytes")
    text = body.decode("utf-8", "replace")
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError:
        raise HTTPException(400, f"form with over {MAX_FIELDS} fields") from None


async def verified_form(request: Request) -> dict[str, str]:
    """The form of a state-changing request, once its CSRF token matched the cookie.

    Raises:
        HTTPException: 403 when the token is missing or wrong (and the reasons of
            `read_form`).
    """
    form = await read_form(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = form.get(FIELD, "")
    if not cookie or not given or not hmac.compare_digest(given.encode(), cookie.encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


__all__ = ["FIELD", "MAX_FORM_BYTES", "read_form", "verified_form"]
