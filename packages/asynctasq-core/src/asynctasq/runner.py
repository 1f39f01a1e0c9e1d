"""`run()`: run a coroutine to completion on uvloop when it is installed, asyncio otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asynctasq.utils.affinity import unpin_thread, unpinned_cpus

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

        if unpinned_cpus() is not None:
            # In a worker pinned to one CPU (--pin-cpus), asyncio.to_thread and
            # run_in_executor(None, ...) still spread over every CPU, as task threads do.
            executor = ThreadPoolExecutor(thread_name_prefix="asyncio", initializer=unpin_thread)
            asyncio.get_running_loop().set_default_executor(executor)
        try:
            return await main
        finally:
            await close_drivers()

    with asyncio.Runner(debug=debug, loop_factory=loop_factory()) as runner:
        return runner.run(wrapper())


__all__ = ["run"]
