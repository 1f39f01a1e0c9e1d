"""CPU time from /proc (Linux; psutil is not a dependency): of a process tree, of processes
by name, and of the whole host, in seconds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    ppid: int
    name: str
    cpu: float
    """utime + stime + cutime + cstime, in seconds (children counted once reaped)."""


def _read(pid_dir: Path) -> ProcStat | None:
    try:
        raw = (pid_dir / "stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # The name is in parentheses and may hold spaces: split after the last ')'.
    head, _, rest = raw.rpartition(")")
    name = head.split("(", 1)[1]
    fields = rest.split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ProcStat(int(pid_dir.name), int(fields[1]), name, ticks / TICK)


def processes() -> list[ProcStat]:
    """Every process readable now."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _read(entry)
            if stat is not None:
                found.append(stat)
    return found


def tree_cpu(root: int, snapshot: list[ProcStat] | None = None) -> float:
    """CPU seconds of `root` and every live descendant."""
    procs = snapshot if snapshot is not None else processes()
    children: dict[int, list[ProcStat]] = {}
    by_pid = {p.pid: p for p in procs}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in by_pid:
            total += by_pid[pid].cpu
        todo.extend(c.pid for c in children.get(pid, ()))
    return total


def named_cpu(names: tuple[str, ...], before: list[ProcStat], after: list[ProcStat]) -> float:
    """CPU seconds spent between two snapshots by the processes named one of `names` (a
    broker's) that were alive at both: another server of the same name started or stopped
    meanwhile (a test's private Redis) must not count."""
    then = {p.pid: p.cpu for p in before if p.name in names}
    return sum(p.cpu - then[p.pid] for p in after if p.name in names and p.pid in then)


def host_busy() -> tuple[float, float]:
    """(busy CPU seconds, all CPU seconds) of the host since boot, over every core."""
    fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / TICK, total / TICK


__all__ = ["ProcStat", "host_busy", "named_cpu", "processes", "tree_cpu"]
