"""A session factory that is safe in worker processes and process-pool children."""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, create_engine, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def worker_session_factory(
    url: str | URL, **engine_kwargs: Any
) -> async_sessionmaker[AsyncSession] | sessionmaker[Session]:
    """Build a session factory whose engine keeps no connection between sessions.

    The engine uses `NullPool`: every session opens its own connection and closes it when it
    ends. Nothing is shared across processes (``process=True`` tasks run in child processes,
    each task on an event loop of its own), so no connection is ever used by a process or a
    loop that did not open it. Set the result on your declarative base::

        Base._asynctasq_session_factory = worker_session_factory(
            "postgresql+asyncpg://app@db/app"
        )

    Args:
        url: A SQLAlchemy URL. An async driver (``postgresql+asyncpg``, ``mysql+aiomysql``,
            ``postgresql+psycopg_async`` ...) gives an `async_sessionmaker`; a sync driver
            (``postgresql+psycopg``, ``mysql+pymysql`` ...) a `sessionmaker`, whose fetches
            run in a thread.
        **engine_kwargs: Passed to `create_async_engine` / `create_engine` (``poolclass``
            defaults to `NullPool`).

    Returns:
        A factory of sessions that do not expire instances on commit.
    """
    engine_kwargs.setdefault("poolclass", NullPool)
    parsed = make_url(url)
    if parsed.get_dialect().is_async:
        engine = create_async_engine(parsed, **engine_kwargs)
        return async_sessionmaker(engine, expire_on_commit=False)
    return sessionmaker(create_engine(parsed, **engine_kwargs), expire_on_commit=False)
