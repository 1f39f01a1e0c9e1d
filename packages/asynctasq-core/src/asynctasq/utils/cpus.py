"""How many CPUs this process can keep busy: its affinity mask, capped by the CPU time a
Linux control group lets it use (``docker run --cpus``, a Kubernetes CPU limit, systemd's
``CPUQuota=``).

Why the cap: such a limit leaves the affinity mask at every CPU of the host. A worker sized from the
mask alone on a 64-core node limited to 2 CPUs starts 64 worker processes (``--workers auto``)
or 64 pool children (``process=True`` tasks), which then share 2 CPUs' worth of time, each
throttled in turn. The limit, rounded up, is the count that can actually run.

Both cgroup versions are read: v2's ``cpu.max`` and v1's ``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``, for this process's group and each group above it (the tightest wins).
Inside a container the group's path as ``/proc/self/cgroup`` names it may not exist under the
container's own mount, whose root is then the container's group: missing files are skipped.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

from asynctasq.utils.affinity import unpinned_cpus

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
_MAX_READ = 4096
"""Bytes read of one of these files: each holds a line of a few numbers."""


def cpu_count() -> int:
    """The CPUs this process can keep busy: those it may run on (its affinity mask where the
    OS has one; in a worker pinned to one CPU, every CPU its pools may use), at most the CPU
    time its control groups allow (a container's CPU limit), rounded up."""
    pinned = unpinned_cpus()
    if pinned:
        cpus = len(pinned)
    elif hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    limit = cpu_limit()
    return max(1, cpus if limit is None else min(cpus, limit))


def cpu_limit(root: Path = CGROUP_ROOT, membership: Path = SELF_CGROUP) -> int | None:
    """The CPUs' worth of time this process's control groups allow, rounded up (at least 1),
    or None when none sets a limit (or this is not Linux)."""
    quota = cpu_quota(root, membership)
    return max(1, math.ceil(quota)) if quota is not None else None


def cpu_quota(root: Path = CGROUP_ROOT, membership: Path = SELF_CGROUP) -> float | None:
    """The CPUs' worth of time this process's control groups allow, as set (1.5 for
    ``--cpus 1.5``), or None when none sets a limit (or this is not Linux)."""
    quotas = [q for q in _quotas(root, membership) if q > 0]
    return min(quotas) if quotas else None


def _quotas(root: Path, membership: Path) -> list[float]:
    try:
        lines = _read(membership).splitlines()
    except OSError:
        return []
    found: list[float] = []
    for line in lines:
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path.startswith("/"):
            continue
        if controllers == "":  # the v2 unified hierarchy
            for group in _groups(root, path):
                found.extend(_v2_quota(group))
        elif "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu"):
                for group in _groups(mount, path):
                    found.extend(_v1_quota(group))
    return found


def _groups(mount: Path, path: str) -> list[Path]:
    """`path`'s directory under `mount` and each one above it, up to the mount itself."""
    relative = PurePosixPath(path).relative_to("/")
    return [mount / relative, *(mount / p for p in relative.parents)]


def _v2_quota(group: Path) -> list[float]:
    try:
        quota, _, period = _read(group / "cpu.max").strip().partition(" ")
        return [] if quota == "max" else [int(quota) / int(period)]
    except (OSError, ValueError, ZeroDivisionError):
        return []


def _v1_quota(group: Path) -> list[float]:
    try:
        quota = int(_read(group / "cpu.cfs_quota_us"))
        period = int(_read(group / "cpu.cfs_period_us"))
        return [] if quota < 0 else [quota / period]
    except (OSError, ValueError, ZeroDivisionError):
        return []


def _read(path: Path) -> str:
    with path.open(encoding="ascii", errors="replace") as file:
        return file.read(_MAX_READ)


__all__ = ["cpu_count", "cpu_limit", "cpu_quota"]
