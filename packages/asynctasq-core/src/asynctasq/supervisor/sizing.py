"""How many worker processes, and how big each one's process pool is.

A worker's pool for ``process=True`` tasks defaults to the CPU count. With N workers on one
host that would be N x CPU children competing for the same cores, so a supervised worker's
pool defaults to its share of them: ``max(1, cpus // N)``.

Pinning each worker to a CPU (`asynctasq.utils.affinity`) is asked for, or ``"auto"``: only
where the workers are exactly one per CPU (`fills_the_cpus`).
"""

from __future__ import annotations

import os

from asynctasq.utils import affinity
from asynctasq.utils.cpus import cpu_count, cpu_quota

CHILD_VARIABLE = "ASYNCTASQ_SUPERVISOR_CHILD"
"""Set in each supervised worker process: its number, 1 to N (also in its log lines)."""
CHILDREN_VARIABLE = "ASYNCTASQ_SUPERVISOR_CHILDREN"
"""Set in each supervised worker process: how many the supervisor runs (N)."""


def parse_workers(value: str | int) -> int:
    """A worker-process count: a whole number >= 1, or ``auto`` for the CPU count.

    Raises:
        ValueError: anything else, with what was given and what is accepted.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return cpu_count()
        try:
            value = int(text)
        except ValueError:
            raise ValueError(
                f"workers must be a whole number >= 1 or 'auto', got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"workers must be a whole number >= 1 or 'auto', got {value!r}")
    return value


def process_pool_share(workers: int, cpus: int | None = None) -> int:
    """One worker's share of the CPUs for its process pool: ``max(1, cpus // workers)``.

    Args:
        workers: Worker processes on the host.
        cpus: CPUs to share (default: `cpu_count()`).
    """
    return max(1, (cpus if cpus is not None else cpu_count()) // max(1, workers))


def fills_the_cpus(workers: int) -> bool:
    """Whether `workers` processes are one per CPU this process may run on, with no CPU
    limit below that, not even a fraction of a CPU (Linux): where ``pin_cpus="auto"``
    pins them.

    Each CPU then gets exactly one worker, so pinning concentrates nothing, and other
    unpinned processes are moved around them. Not with a container's CPU limit: its mask
    still names every CPU of the node, which other containers share.
    """
    if not affinity.supported():
        return False
    cpus = len(affinity.allowed_cpus())
    quota = cpu_quota()
    return workers == cpus and (quota is None or quota >= cpus)


def child_number() -> int | None:
    """This process's number under a supervisor (1 to N), or None when not supervised."""
    raw = os.environ.get(CHILD_VARIABLE, "")
    return int(raw) if raw.isdigit() else None


def supervised_pool_size() -> int | None:
    """The process-pool size a supervised worker defaults to, or None when not supervised
    (the pool then defaults to the CPU count)."""
    raw = os.environ.get(CHILDREN_VARIABLE, "")
    if child_number() is None or not raw.isdigit():
        return None
    return process_pool_share(int(raw))


__all__ = [
    "CHILDREN_VARIABLE",
    "CHILD_VARIABLE",
    "child_number",
    "cpu_count",
    "fills_the_cpus",
    "parse_workers",
    "process_pool_share",
    "supervised_pool_size",
]
