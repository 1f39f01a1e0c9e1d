"""Queue a task when the current database transaction commits (`transaction.on_commit`).

Inside ``transaction.atomic()`` the task is queued once the outermost block commits, and
never if it rolls back (a savepoint that rolls back drops the tasks registered inside it);
outside any atomic block (autocommit) it is queued at once. The task's arguments are
serialized at that moment, so a model saved in the transaction already has its key.

``on_commit`` callbacks run in Django's sync world. The dispatch runs on the event loop that
called into it through `sync_to_async` (Django's async views, asynctasq tasks), or on a short
loop of its own in plain sync code (WSGI views, management commands); an error while queueing
is raised there, after the commit. Called on a thread that runs an event loop, it is
scheduled on that loop instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from django.db import transaction

from asynctasq.core.dispatch import dispatch
from asynctasq.core.task import BaseTask, handed_over
from asynctasq.runner import run

log = logging.getLogger("asynctasq_orm_django")
_background: set[asyncio.Task[Any]] = set()


def dispatch_after_commit(
    task: BaseTask[Any], *, using: str | None = None, robust: bool = False
) -> None:
    """Dispatch ``task`` after the current transaction on ``using`` commits.

    Args:
        task: A task ready to dispatch, e.g. ``send_welcome_email(user=user)``.
        using: The database alias (default: ``default``).
        robust: As for `transaction.on_commit`: log a dispatch error instead of raising it.
    """
    handed_over(task)  # dropped on rollback by design: not a forgotten dispatch
    transaction.on_commit(lambda: _dispatch_blocking(task), using=using, robust=robust)


def _dispatch_blocking(task: BaseTask[Any]) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:  # sync code on a running loop: we may not block it
        background = loop.create_task(dispatch(task))
        _background.add(background)
        background.add_done_callback(_report)
    elif getattr(SyncToAsync.threadlocal, "main_event_loop", None) is not None:
        async_to_sync(dispatch)(task)  # on the loop that awaits this thread
    else:
        run(dispatch(task))


def _report(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("dispatch after commit failed", exc_info=task.exception())
