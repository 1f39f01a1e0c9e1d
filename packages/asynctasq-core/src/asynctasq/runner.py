"""`run()`: run a coroutine to completion on uvloop when it is installed, asyncio otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """Run `main` and return its result; closes the drivers it opened by name.

    Args:
        main: The coroutine to run.
        debug: asyncio debug mode.
    """

    async def wrapper() -> T:
        from asynctasq.drivers.connections import close_drivers

        try:
            return await main
        finally:
            await close_drivers()

    with asyncio.Runner(debug=debug, loop_factory=loop_factory()) as runner:
        return runner.run(wrapper())


__all__ = ["run"]
