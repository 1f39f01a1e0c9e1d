"""A FastAPI lifespan: AsyncTasQ configured at start-up, its drivers closed at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from asynctasq.config import init
from asynctasq.drivers.connections import close_drivers

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


def asynctasq_lifespan(
    settings: Mapping[str, Any] | None = None,
    *,
    dotenv: str | Path | None = None,
    inner: Lifespan | None = None,
) -> Lifespan:
    """A lifespan for ``FastAPI(lifespan=...)``.

    At start-up it sets the configuration as ``asynctasq.init(settings)`` does (settings
    win over ``ASYNCTASQ_*`` variables, which win over ``.env``); at shutdown it closes the
    drivers the application opened (their connection pools), after `inner` has ended.

    Args:
        settings: Settings as for ``init()``; None reads only the environment and ``.env``.
        dotenv: Path of the ``.env`` file (default: ``.env`` in the working directory).
        inner: The application's own lifespan, run inside this one (so it may dispatch at
            start-up and at shutdown).

    Raises:
        ConfigError: at start-up, for an unknown key or an unusable value.
    """

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        init(settings, dotenv=dotenv, source="asynctasq_lifespan()")
        try:
            if inner is None:
                yield
            else:
                async with inner(app):
                    yield
        finally:
            await close_drivers()

    return lifespan
