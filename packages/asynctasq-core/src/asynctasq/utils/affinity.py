"""Pinning each supervised worker to one CPU (``asynctasq worker --workers N --pin-cpus``, or
``ASYNCTASQ_PIN_CPUS=auto``: only where the workers are one per CPU,
`asynctasq.supervisor.sizing.fills_the_cpus`). Off by default: see "what an async task starts
itself" below.

Why: with as many workers as cores and the broker on the same host, the scheduler moves
unpinned workers between the cores and at times queues two on one core while the other runs
only the broker or idles. Two workers draining Redis on 2 cores both ran at once 60% of the
time unpinned and 86% pinned, keeping 1.45 and 1.65-1.7 cores busy (docs/benchmarks.md).
Worker ``i`` runs on the ``i``-th CPU the supervisor may use (round robin when there are more
workers than CPUs), and the broker moves between them.

The supervisor only *plans* the pin in the child (`plan`); the worker applies it to its own
thread once it has started (`apply_plan`, at the start of its fetch loop). So the task modules,
imported before, see every CPU (numerical libraries size their thread pools from it), and so
do the threads the driver and the worker's boot hooks start. After that, the threads of the
worker's thread pool and of its event loop's default executor, and the processes of its
process pool, are put back on every CPU (`unpin_thread`). What an async task starts itself (a
thread with `threading`, a subprocess) inherits the pin.

The CPU list lives in this process only, never in the environment: a subprocess or a pool
child started elsewhere must not act on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence

log = logging.getLogger("asynctasq.worker")

_planned: tuple[int, int, frozenset[int]] | None = None
"""(worker number, its CPU, every CPU) as the supervisor planned it, until applied."""
_unpinned: frozenset[int] | None = None
"""Every CPU of a worker whose thread is pinned: where its pools run."""


def supported() -> bool:
    """Whether this platform can pin a process to CPUs (Linux can, macOS cannot)."""
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order (its affinity mask)."""
    return sorted(os.sched_getaffinity(0))


def plan(number: int, cpus: Sequence[int]) -> None:
    """Plan to pin worker `number` (1 to N) to its CPU, round robin over `cpus` (as
    `allowed_cpus` gave them in the supervisor). Applied by `apply_plan`."""
    global _planned
    if not cpus:
        raise ValueError("no CPUs to pin to")
    cpu = cpus[(number - 1) % len(cpus)]
    _planned = (number, cpu, frozenset(cpus))


def apply_plan() -> int | None:
    """Pin the calling thread (and what it starts from now on) as planned; the CPU, or None
    when nothing was planned or it was applied already.

    A CPU taken away since the supervisor started (a changed cpuset) leaves the worker on
    any CPU, with a warning, rather than failing it.
    """
    global _planned, _unpinned
    if _planned is None:
        return None
    number, cpu, cpus = _planned
    _planned = None
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        log.warning("worker %d runs on any CPU: pinning it failed (%s)", number, exc)
        return None
    _unpinned = cpus
    return cpu


def unpinned_cpus() -> frozenset[int] | None:
    """Every CPU of this worker when its thread is pinned (its pools run there), else None."""
    return _unpinned


def unpin_thread(cpus: Iterable[int] | None = None) -> None:
    """Put the calling thread on every CPU of a pinned worker (nothing when not pinned).

    Args:
        cpus: The CPUs, where this process cannot know them (a pool child gets them from
            its worker); default: `unpinned_cpus`.

    Best effort: a CPU taken away since (a changed cpuset) leaves the thread as it was.
    """
    wanted = set(cpus) if cpus is not None else _unpinned
    if not wanted:  # only ever set where pinning worked
        return
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, wanted)


__all__ = [
    "allowed_cpus",
    "apply_plan",
    "plan",
    "supported",
    "unpin_thread",
    "unpinned_cpus",
]
