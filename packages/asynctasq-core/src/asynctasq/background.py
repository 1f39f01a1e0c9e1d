"""Stopping background loops (a worker's, a driver's) even when a cancellation is swallowed.

A loop is stopped by cancelling its task. Some code below it does not let a cancellation
through every time: a client library that turns it into a connection error and retries the
command, a ``try/except`` around a call. The loop then carries on, and a shutdown waiting for
it waits forever (the process is killed at its deadline instead of exiting). So loops check
`cancel_requested` (a swallowed cancellation is still counted on the task), and
`cancel_and_wait` bounds the wait and says what did not stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger("asynctasq")

STOP_WAIT = 5.0
"""Seconds a stop waits for cancelled background loops before it goes on without them."""


def cancel_requested() -> bool:
    """Whether the running task was asked to stop (even if the cancellation was swallowed)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]], timeout: float = STOP_WAIT) -> None:
    """Cancel `tasks` and wait up to `timeout` seconds for them to end. One still running
    then is cancelled once more and left behind, named in a warning."""
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    for wait in (timeout, 1.0):
        if not pending:
            break
        done, pending = await asyncio.wait(pending, timeout=wait)
        for task in done:  # retrieved, so none is reported as never retrieved
            if not task.cancelled():
                task.exception()
        for task in pending:
            task.cancel()
    if pending:
        log.warning(
            "background task(s) %s did not stop when cancelled; going on without them",
            ", ".join(sorted(t.get_name() for t in pending)),
        )
