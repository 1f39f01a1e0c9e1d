"""Tortoise ORM initialised in the worker, lazily, by the first model fetch.

Tortoise needs ``await Tortoise.init(...)`` before any query, and a worker's start-up code
(``asynctasq worker --import app.asynctasq_setup``) is synchronous. So the setup module only
says how to initialise::

    # app/asynctasq_setup.py
    from asynctasq_orm_tortoise import init_on_first_use

    init_on_first_use(db_url="postgres://app@db/app", modules={"models": ["app.models"]})

and the first model argument the worker decodes runs ``Tortoise.init`` with those settings
(once, whoever asks first; the others wait). The context is made the process-wide fallback,
so every task of the worker sees it. Nothing happens when Tortoise is initialised already.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from typing import Any

from tortoise import Tortoise

from .errors import TortoiseNotInitializedError

_settings: dict[str, Any] | None = None
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def init_on_first_use(config: dict[str, Any] | None = None, **init_kwargs: Any) -> None:
    """Remember the arguments for ``Tortoise.init``; the first model fetch uses them.

    Args:
        config: Tortoise's ``config`` dict, if you configure it that way.
        **init_kwargs: Any other ``Tortoise.init`` keyword (``db_url``, ``modules``,
            ``config_file``, ``use_tz``, ``timezone`` ...).
    """
    global _settings
    settings = dict(init_kwargs)
    if config is not None:
        settings["config"] = config
    _settings = settings


def _is_initialized() -> bool:
    return bool(Tortoise._inited)


async def ensure_initialized() -> None:
    """Initialise Tortoise with the `init_on_first_use` settings unless it already is.

    Call it yourself in a task that queries Tortoise without receiving a model.

    Raises:
        TortoiseNotInitializedError: Tortoise is not initialised and nothing says how.
    """
    if _is_initialized():
        return
    settings = _settings
    if settings is None:
        raise TortoiseNotInitializedError(
            "Tortoise ORM is not initialised in the worker: call "
            "asynctasq_orm_tortoise.init_on_first_use(db_url=..., modules=...) in a module the "
            "worker imports (asynctasq worker --import app.asynctasq_setup), or await "
            "Tortoise.init(...) before the worker runs"
        )
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    async with lock:
        if _is_initialized():
            return
        kwargs = dict(settings)
        if "_enable_global_fallback" in inspect.signature(Tortoise.init).parameters:
            # Tortoise 1.x keeps its state in a context variable: without the fallback the
            # state set up in this decode would be invisible to every other task.
            kwargs["_enable_global_fallback"] = True
        await Tortoise.init(**kwargs)
