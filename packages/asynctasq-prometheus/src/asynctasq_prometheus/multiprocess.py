"""Several worker processes, one scrape: prometheus_client's multiprocess mode.

With ``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its metric values to files in
that directory and whoever serves ``/metrics`` reads them all (`MultiProcessCollector`):
counters and histograms are summed (a process that died keeps its counts, so totals never
go back), gauges combine as each one declares (`asynctasq_prometheus.metrics`).

``asynctasq worker --workers N --metrics-port P`` sets this up by itself: the supervisor
makes a fresh directory, its processes write there, and the supervisor serves the sum.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable: the directory of the processes' metric files."""
STALE_HEARTBEAT = 10.0
"""Seconds without a heartbeat after which a worker process's event loop counts as stuck."""
_PID = re.compile(r"_(\d+)\.db$")


def directory() -> str | None:
    """The multiprocess directory in effect, or None (single-process mode)."""
    return os.environ.get(DIR_VARIABLE) or None


def enable(path: str | os.PathLike[str]) -> None:
    """Put this process (and the processes it forks from now on) in multiprocess mode.

    Metrics created afterwards write to `path`; prometheus_client picks its value class
    when first imported, so it is picked again here.
    """
    os.environ[DIR_VARIABLE] = str(path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead(path: str) -> None:
    """Drop the live-only gauges of processes that are gone (their counters stay)."""
    pids = set()
    for entry in os.scandir(path):
        match = _PID.search(entry.name)
        if match is not None:
            pids.add(int(match.group(1)))
    for pid in pids:
        if not _alive(pid):
            with contextlib.suppress(OSError):
                mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class _FleetCollector(Collector):
    def __init__(self, path: str) -> None:
        self.path = path
        self._inner = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        forget_dead(self.path)
        return self._inner.collect()  # type: ignore[no-any-return,no-untyped-call]


class Fleet:
    """The metrics and health of every process writing to `path`.

    Args:
        path: The multiprocess directory.
        expected: How many worker processes should be there (for readiness).
    """

    def __init__(self, path: str, expected: int = 1) -> None:
        self.path = path
        self.expected = expected
        self.registry = CollectorRegistry()
        self.registry.register(_FleetCollector(path))

    def _samples(self, name: str) -> list[Sample]:
        forget_dead(self.path)
        collector = MultiProcessCollector(None, self.path)  # type: ignore[no-untyped-call]
        for family in collector.collect():  # type: ignore[no-untyped-call]
            if family.name == name:
                return list(family.samples)
        return []

    def alive(self) -> str | None:
        """None unless a worker process's event loop stopped answering."""
        now = time.time()
        for sample in self._samples("asynctasq_worker_heartbeat_timestamp_seconds"):
            silent = now - sample.value
            if silent > STALE_HEARTBEAT:
                pid = sample.labels.get("pid", "?")
                return f"worker process {pid}: event loop silent for {silent:.0f} s"
        return None

    def ready(self) -> str | None:
        """None when `expected` worker processes take work, else how many do."""
        ready = sum(1 for s in self._samples("asynctasq_worker_ready") if s.value == 1)
        if ready >= self.expected:
            return None
        return f"{ready} of {self.expected} worker processes ready"


def fresh_directory(parent: str | None = None) -> Path:
    """A new empty directory for one supervisor's processes."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="asynctasq-metrics-", dir=parent))


__all__ = ["DIR_VARIABLE", "Fleet", "directory", "enable", "forget_dead", "fresh_directory"]
