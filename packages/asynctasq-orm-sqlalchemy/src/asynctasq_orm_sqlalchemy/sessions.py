"""Fetching a model in the worker, with the session its class is configured with.

Two ways to configure it, both looked up through the model's MRO (so setting them on the
declarative base covers every model):

* ``Base._asynctasq_session_factory``: an `async_sessionmaker` or a sync `sessionmaker` (or
  any callable returning a session). Every fetch opens a short session of its own and
  closes it, so the instance arrives detached with its columns loaded, and several models
  are fetched truly concurrently.
* ``Model._asynctasq_session_var``: a `contextvars.ContextVar` the application sets to an
  `AsyncSession` or `Session` (or to a factory, used as above). The instance is loaded into
  that session (refreshed if it was there already). One session cannot run two queries at
  once, so fetches through the same session take turns.

The context variable wins when it holds a value; otherwise the factory is used. With
neither (the guides set the variable only in the dispatching script's ``main()``, which a
worker never runs), the one session factory the model's own module defines at module level
is used, as a factory: an `async_sessionmaker` or `sessionmaker`, or else its one engine.
Anything less certain (none, or several) is an error that says what to set.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_scoped_session,
    async_sessionmaker,
)
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from .errors import SessionNotConfiguredError

SESSION_FACTORY: Final = "_asynctasq_session_factory"
SESSION_VAR: Final = "_asynctasq_session_var"

_turns: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()
"""One lock per shared session: a session runs one query at a time."""
_found: weakref.WeakKeyDictionary[type, Any] = weakref.WeakKeyDictionary()
"""Per model, the factory found in its module (see the module docstring)."""

log = logging.getLogger("asynctasq.sqlalchemy")


def session_source(model: type) -> Any:
    """The session or session factory configured for ``model``.

    Raises:
        SessionNotConfiguredError: Neither attribute is set (or the variable has no value
            and there is no factory).
    """
    var = getattr(model, SESSION_VAR, None)
    if var is not None:
        value = var.get(None)
        if value is not None:
            return value
    factory = getattr(model, SESSION_FACTORY, None)
    if factory is not None:
        return factory
    found = _found.get(model)
    if found is None:
        found = _module_factory(model)
        if found is not None:
            _found[model] = found
    if found is not None:
        return found
    if var is not None:
        # The usual cause: the dispatching code set the variable (in its main()), and the
        # worker never ran that code.
        raise SessionNotConfiguredError(
            f"no SQLAlchemy session for {model.__qualname__}: its {SESSION_VAR} holds no "
            "value in the worker. Give it one in a module the worker imports at start-up "
            "(asynctasq worker --import <module>), e.g. "
            "session_var.set(async_sessionmaker(engine)) (each fetch then opens its own "
            f"session), or set Base.{SESSION_FACTORY} = async_sessionmaker(engine) on the "
            "declarative base"
        )
    raise SessionNotConfiguredError(
        f"no SQLAlchemy session for {model.__qualname__}: set "
        f"Base.{SESSION_FACTORY} = async_sessionmaker(engine) on its declarative base, or set "
        f"{model.__qualname__}.{SESSION_VAR} to a ContextVar holding a session in the worker"
    )


def _module_factory(model: type) -> Any | None:
    """The one session factory (else the one engine, made a factory) defined at module level
    in `model`'s module; None when there is not exactly one."""
    module = sys.modules.get(model.__module__)
    if module is None:
        return None
    values = list(vars(module).items())
    makers = [(n, v) for n, v in values if isinstance(v, async_sessionmaker | sessionmaker)]
    if not makers:
        engines = [(n, v) for n, v in values if isinstance(v, AsyncEngine | Engine)]
        if len(engines) != 1:
            return None
        name, engine = engines[0]
        made: Any = (
            async_sessionmaker(engine, expire_on_commit=False)
            if isinstance(engine, AsyncEngine)
            else sessionmaker(engine, expire_on_commit=False)
        )
        makers = [(f"a session factory of {name}", made)]
    if len(makers) != 1:
        return None
    name, maker = makers[0]
    log.info(
        "fetching %s with %s.%s, the one session factory its module defines (set %s on "
        "the model or its base to choose another)",
        model.__qualname__,
        model.__module__,
        name,
        SESSION_FACTORY,
    )
    return maker


def _turn(session: object) -> asyncio.Lock:
    lock = _turns.get(session)
    if lock is None:
        lock = _turns[session] = asyncio.Lock()
    return lock


async def fetch(model: type, ident: Any) -> Any | None:
    """Load the row of ``model`` with primary key ``ident`` (a tuple for composite keys).

    Returns:
        The instance, or None when there is no such row.

    Raises:
        SessionNotConfiguredError: No session is configured for ``model``.
    """
    source = session_source(model)
    if isinstance(source, async_scoped_session | scoped_session):
        source = source()
    if isinstance(source, AsyncSession):
        async with _turn(source):
            return await source.get(model, ident, populate_existing=True)
    if isinstance(source, Session):
        async with _turn(source):
            return await asyncio.to_thread(_get_shared, source, model, ident)
    if isinstance(source, sessionmaker):
        return await asyncio.to_thread(_get_owned, source, model, ident)
    if not isinstance(source, async_sessionmaker) and not callable(source):
        raise SessionNotConfiguredError(
            f"the session configured for {model.__qualname__} is {source!r}: expected a "
            "session, a sessionmaker or an async_sessionmaker"
        )
    session = source()
    if isinstance(session, Session):
        return await asyncio.to_thread(_get_owned, lambda: session, model, ident)
    if not isinstance(session, AsyncSession):
        raise SessionNotConfiguredError(
            f"the session factory configured for {model.__qualname__} returned {session!r}, "
            "not a Session or an AsyncSession"
        )
    async with session:
        return await session.get(model, ident)


def _get_shared(session: Session, model: type, ident: Any) -> Any | None:
    return session.get(model, ident, populate_existing=True)


def _get_owned(factory: Any, model: type, ident: Any) -> Any | None:
    with factory() as session:
        return session.get(model, ident)
