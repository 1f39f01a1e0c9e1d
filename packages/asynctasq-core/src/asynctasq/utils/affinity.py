"""Pinning each supervised worker to one CPU (``asynctasq worker --workers N --pin-cpus``).

Why: with as many workers as cores and the broker on the same host, the scheduler moves
unpinned workers between the cores and at times queues two on one core while the other runs
only the broker or idles. Two workers draining Redis on 2 cores both ran at once 60% of the
time unpinned and 86% pinned, keeping 1.45 and 1.65-1.7 cores busy (docs/benchmarks.md).
Worker ``i`` runs on the ``i``-th CPU the supervisor may use (round robin when there are more
workers than CPUs), and the broker moves between them.

Only the thread that runs a worker's event loop stays pinned. The threads of its thread pool
and of its event loop's default executor, and the processes of its process pool, are put
back on every CPU the supervisor could use, so sync and process tasks spread over the cores
as they would unpinned. What an async task starts itself (a thread with `threading`, a
subprocess) inherits the pin.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

UNPINNED_VARIABLE = "ASYNCTASQ_SUPERVISOR_CPUS"
"""Set in a pinned worker: the CPUs its pools are put back on (``0,1,2,3``)."""


def supported() -> bool:
    """Whether this platform can pin a process to CPUs (Linux can, macOS cannot)."""
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order (its affinity mask)."""
    return sorted(os.sched_getaffinity(0))


def pin(number: int, cpus: Sequence[int]) -> int:
    """Pin the calling thread (and what it starts from now on) to worker `number`'s CPU.

    Args:
        number: The worker's number, 1 to N.
        cpus: The CPUs to share out, as `allowed_cpus` gave them in the supervisor.

    Returns:
        The CPU the worker now runs on.
    """
    if not cpus:
        raise ValueError("no CPUs to pin to")
    cpu = cpus[(number - 1) % len(cpus)]
    os.sched_setaffinity(0, {cpu})
    os.environ[UNPINNED_VARIABLE] = ",".join(str(c) for c in cpus)
    return cpu


def unpinned_cpus() -> set[int] | None:
    """The CPUs a pinned worker's pools run on, or None when this worker is not pinned."""
    raw = os.environ.get(UNPINNED_VARIABLE, "")
    parts = raw.split(",")
    if not raw or len(parts) > 65536 or not all(p.isdigit() and len(p) < 7 for p in parts):
        return None
    return {int(p) for p in parts}


def unpin_thread() -> None:
    """Put the calling thread back on every CPU of a pinned worker (nothing when unpinned).

    Best effort: a CPU taken away since (a changed cpuset) leaves the thread as it was.
    """
    cpus = unpinned_cpus()
    if cpus is None or not supported():
        return
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, cpus)


__all__ = [
    "UNPINNED_VARIABLE",
    "allowed_cpus",
    "pin",
    "supported",
    "unpin_thread",
    "unpinned_cpus",
]
