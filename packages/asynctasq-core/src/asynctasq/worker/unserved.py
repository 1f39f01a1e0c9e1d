"""At start, naming the queues where tasks wait that the worker does not serve.

The commonest "my tasks never run" is a worker started on the default queue while the tasks
went to ``emails`` (or to a misspelt ``--queues emial``): nothing fails, so nothing is said.
One look at start-up, in the background, says where the tasks are.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence

from asynctasq.drivers.base import Driver
from asynctasq.worker.failures import clip, printable

log = logging.getLogger("asynctasq.worker")

MAX_QUEUES_LOOKED_AT = 100
"""Most other queues whose depth is read (anyone who can write to the broker adds names)."""
MAX_QUEUES_NAMED = 10


async def note_unserved_queues(driver: Driver, served: Sequence[str]) -> None:
    """Log the queues other than `served` that hold ready or delayed tasks; best effort."""
    try:
        names = await driver.queue_names()
        served_set = set(served)
        others = heapq.nsmallest(MAX_QUEUES_LOOKED_AT, (n for n in names if n not in served_set))
        if not others:
            return
        waiting = [s for s in await driver.stats(others) if s.ready > 0 or s.delayed > 0]
    except Exception as exc:  # a broker without listings, or one that failed: say nothing
        log.debug("could not look for tasks in other queues: %s", type(exc).__name__)
        return
    if not waiting:
        return
    shown = ", ".join(
        f"{printable(clip(s.queue, 100))} ({s.ready} ready, {s.delayed} delayed)"
        for s in waiting[:MAX_QUEUES_NAMED]
    )
    more = f" and {len(waiting) - MAX_QUEUES_NAMED} more" if len(waiting) > MAX_QUEUES_NAMED else ""
    log.info(
        "tasks wait in queues this worker does not serve: %s%s (it serves %s; add them to "
        "--queues to run them here)",
        shown,
        more,
        ", ".join(printable(clip(q, 100)) for q in served),
    )
