"""Queue tasks when a session's transaction commits, never before and never on rollback.

A task that reads a row must not run before the row is visible. ``dispatch_after_commit``
keeps the task with the session and dispatches it once the outermost transaction has
committed (a savepoint that rolls back drops the tasks registered inside it; a rollback or
a close without commit drops them all). The task's arguments are serialized at that moment,
so a model created in the transaction already has its primary key.

With an `AsyncSession`, ``await session.commit()`` returns once the tasks are queued; with
a sync `Session`, ``session.commit()`` does (the dispatch runs on the process's sync dispatch
loop, as ``dispatch_many_sync`` does, so connections are kept between commits). An error
while queueing is raised from ``commit()``, after the database commit and with the session
in a clean state. The exception: a sync session used on a thread that runs an event loop,
which must not block it, schedules the dispatch there and logs an error that happens.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util.concurrency import await_only, in_greenlet

from asynctasq.core.dispatch import dispatch_many
from asynctasq.core.sync import dispatch_many_sync
from asynctasq.core.task import BaseTask, handed_over

log = logging.getLogger("asynctasq_orm_sqlalchemy")

_INFO_KEY: Final = "asynctasq.after_commit"
_background: set[asyncio.Task[Any]] = set()


@dataclass(slots=True)
class _Pending:
    """Tasks waiting on one session: each with the transaction it was registered in."""

    waiting: list[tuple[SessionTransaction | None, BaseTask[Any]]] = field(default_factory=list)
    committed: list[BaseTask[Any]] = field(default_factory=list)


def dispatch_after_commit(session: Session | AsyncSession, task: BaseTask[Any]) -> None:
    """Dispatch ``task`` after the session's current transaction commits.

    Args:
        session: A `Session` or `AsyncSession` (its ``sync_session`` carries the events).
        task: A task ready to dispatch, e.g. ``send_welcome_email(user=user)`` or
            ``SendWelcomeEmail(user=user)``.
    """
    handed_over(task)  # dropped on rollback by design: not a forgotten dispatch
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    pending = sync.info.get(_INFO_KEY)
    if pending is None:
        pending = sync.info[_INFO_KEY] = _Pending()
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_soft_rollback", _after_soft_rollback)
        event.listen(sync, "after_transaction_end", _after_transaction_end)
    transaction = sync.get_nested_transaction()
    if transaction is None:
        transaction = sync.get_transaction()  # None before the session has begun one
    pending.waiting.append((transaction, task))


def _pending(session: Session) -> _Pending:
    pending: _Pending = session.info[_INFO_KEY]
    return pending


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    """Whether ``transaction`` is ``ancestor`` or nested inside it (None: the root-to-be)."""
    if transaction is None:
        return ancestor.parent is None
    node: SessionTransaction | None = transaction
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: its tasks wait for the outermost commit
    pending = _pending(session)
    pending.committed.extend(task for _, task in pending.waiting)
    pending.waiting.clear()


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = _pending(session)
    pending.waiting = [
        (transaction, task)
        for transaction, task in pending.waiting
        if not _within(transaction, previous_transaction)
    ]


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    # The outermost transaction is closed and its connection released: raising from here
    # leaves the session usable, unlike raising from after_commit.
    pending = _pending(session)
    tasks, pending.committed = pending.committed, []
    pending.waiting.clear()  # ended without commit (rolled back or closed)
    if tasks:
        _dispatch_now(tasks)


def _dispatch_now(tasks: list[BaseTask[Any]]) -> None:
    if in_greenlet():  # inside AsyncSession.commit(): the event loop is ours to await on
        await_only(dispatch_many(tasks))
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # Plain sync code (a Flask or Django view, a script): the process's sync dispatch
        # loop, whose connections stay open between commits.
        dispatch_many_sync(tasks)
        return
    # A sync session used on a running loop: we may not block it, so queue in the background.
    background = loop.create_task(dispatch_many(tasks))
    _background.add(background)
    background.add_done_callback(_report)


def _report(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("dispatch after commit failed", exc_info=task.exception())
