"""The ``Dispatch`` dependency: queue tasks from an endpoint, now or once it succeeded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import Depends

from asynctasq.core.dispatch import dispatch_many
from asynctasq.core.results import TaskId
from asynctasq.core.task import BaseTask, handed_over
from asynctasq.errors import MissingDependencyError

T = TypeVar("T")


class Dispatcher:
    """What an endpoint gets from ``Dispatch``: one per request."""

    def __init__(self) -> None:
        self._on_success: list[BaseTask[Any]] = []

    async def __call__(self, task: BaseTask[T], *, connection: Any = None) -> TaskId[T]:
        """Queue `task` now (as ``await task.dispatch(connection=...)``) and return its id."""
        return await task.dispatch(connection=connection)

    async def many(self, tasks: Iterable[BaseTask[Any]]) -> list[TaskId[Any]]:
        """Queue several tasks now, one batch call per driver; return their ids."""
        return await dispatch_many(tasks)

    def on_success(self, task: BaseTask[Any]) -> None:
        """Queue `task` once the endpoint has returned without raising (before the
        response is sent); an endpoint that raises queues none of them."""
        handed_over(task)  # dropped on error by design, not a forgotten dispatch
        self._on_success.append(task)

    def after_commit(self, session: Any, task: BaseTask[Any]) -> None:
        """Queue `task` when the SQLAlchemy session's transaction commits (never on
        rollback); see ``asynctasq_orm_sqlalchemy.dispatch_after_commit``.

        Raises:
            MissingDependencyError: asynctasq-orm-sqlalchemy is not installed.
        """
        try:
            from asynctasq_orm_sqlalchemy import dispatch_after_commit
        except ImportError as exc:
            raise MissingDependencyError(
                "dispatch after commit needs the SQLAlchemy integration: "
                "pip install asynctasq-orm-sqlalchemy"
            ) from exc
        dispatch_after_commit(session, task)

    async def _flush(self) -> None:
        tasks, self._on_success = self._on_success, []
        if tasks:
            await dispatch_many(tasks)


async def get_dispatcher() -> AsyncIterator[Dispatcher]:
    """The FastAPI dependency behind ``Dispatch`` (override it in tests)."""
    dispatcher = Dispatcher()
    yield dispatcher  # an endpoint's exception is raised here: nothing is flushed
    await dispatcher._flush()


# Scope "function": the code after the dependency's yield (the flush of `on_success`) runs
# when the endpoint returns, before the response is sent; by default it would run after.
Dispatch = Annotated[Dispatcher, Depends(get_dispatcher, scope="function")]
"""Annotate an endpoint parameter with it: ``async def signup(dispatch: Dispatch)``."""
