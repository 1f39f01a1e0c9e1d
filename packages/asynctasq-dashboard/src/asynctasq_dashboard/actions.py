"""POST handlers: cancel a task, retry or purge dead letters, log in.

Each acts through the same API as the CLI (`asynctasq.cancel`,
`Driver.retry_dead_letters`, `Driver.purge_dead_letters`), only after the form's CSRF token
matched (`csrf.verified_form`), and answers with a redirect to a page that shows the
outcome (post/redirect/get: a reload never repeats the action).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import asynctasq
from asynctasq.core.results import canonical_task_id
from asynctasq.lifecycle import control
from asynctasq_dashboard.auth import SESSION_COOKIE, TokenAuth
from asynctasq_dashboard.csrf import verified_form
from asynctasq_dashboard.guard import cookie_path
from asynctasq_dashboard.pages import MAX_PARAM
from asynctasq_dashboard.rendering import base_context, templates
from asynctasq_dashboard.state import dashboard_of


def _field(form: dict[str, str], name: str) -> str | None:
    value = form.get(name) or None
    if value is not None and len(value) > MAX_PARAM:
        raise HTTPException(400, f"the {name!r} field is over {MAX_PARAM} characters")
    return value


def _to(request: Request, route: str, **query: str | int) -> RedirectResponse:
    url = str(request.url_for(route))
    if query:
        url += "?" + urlencode(query)
    return RedirectResponse(url, status_code=303)


async def cancel(request: Request) -> Response:
    """Cancel the task named by the form's ``id`` (`asynctasq.cancel`)."""
    form = await verified_form(request)
    task_id = _field(form, "id")
    if task_id is None:
        raise HTTPException(400, "which task? the form has no id")
    try:
        task_id = canonical_task_id(task_id)
    except ValueError:
        raise HTTPException(400, "that is not a task id (task ids are UUIDs)") from None
    driver = await dashboard_of(request).connected()
    outcome = await asynctasq.cancel(task_id, driver=driver)
    return _to(request, "task", id=task_id, done=str(outcome))


async def _selection(request: Request) -> tuple[str | None, str | None, dict[str, str]]:
    form = await verified_form(request)
    task_id, queue = _field(form, "id"), _field(form, "queue")
    if task_id is None and queue is None and form.get("all") != "yes":
        raise HTTPException(400, "which dead letters? give an id, a queue, or all=yes")
    return task_id, queue, form


async def retry(request: Request) -> Response:
    """Retry one dead letter (``id``), a queue's (``queue``) or all (``all=yes``)."""
    task_id, queue, _ = await _selection(request)
    driver = await dashboard_of(request).connected()
    ids = [task_id] if task_id is not None else None
    done = await control.retry_dead_letters(driver, queue=queue, task_ids=ids)
    if task_id is not None and done:
        # Straight to the task: its page follows it as it runs again.
        return _to(request, "task", id=task_id, done="retried", n=done)
    return _to(request, "dead_letters", done="retried" if done else "none", n=done)


async def purge(request: Request) -> Response:
    """Delete one dead letter (``id``), a queue's (``queue``) or all (``all=yes``); a
    whole queue or everything needs ``confirm=yes`` as well."""
    task_id, queue, form = await _selection(request)
    if task_id is None and form.get("confirm") != "yes":
        raise HTTPException(400, "purging many dead letters needs the confirmation ticked")
    driver = await dashboard_of(request).connected()
    ids = [task_id] if task_id is not None else None
    done = await driver.purge_dead_letters(queue=queue, task_ids=ids)
    return _to(request, "dead_letters", done="purged" if done else "none", n=done)


def _safe_next(target: str | None) -> str:
    # Only a path inside the dashboard: never another site (an open redirect).
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: Request) -> Response:
    """The token form (token auth only)."""
    context = base_context(request, "login")
    context.update(next=_safe_next(request.query_params.get("next")), failed=False)
    return templates.TemplateResponse(request, "login.html", context)


async def login(request: Request) -> Response:
    """Check the token; on success set the session cookie and go where the user was going."""
    auth = request.app.state.auth
    form = await verified_form(request)
    target = _safe_next(form.get("next"))
    if not isinstance(auth, TokenAuth) or not auth.accepts_token(form.get("token", "")):
        context = base_context(request, "login")
        context.update(next=target, failed=True)
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    root = cookie_path(request.scope)
    response = RedirectResponse(root.rstrip("/") + target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        auth.session_value(),
        path=root,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


__all__ = ["cancel", "login", "login_page", "purge", "retry"]
