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
import json
import logging
import os
import re
import struct
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, values
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from asynctasq.utils.processes import process_alive

log = logging.getLogger("asynctasq.prometheus")

DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable: the directory of the processes' metric files."""
STALE_HEARTBEAT = 10.0
"""Seconds without a heartbeat after which a worker process's event loop counts as stuck."""
_PID = re.compile(r"_(\d+)\.db$")
_HEADER = 8
"""Bytes at the start of a metric file before its values (prometheus_client's mmap_dict)."""
_UNREADABLE = (OSError, ValueError, TypeError, AttributeError, RuntimeError, struct.error)
"""What reading a metric file that is not (or no longer) what it should be raises."""
_reported: set[str] = set()


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


def forget_dead(path: str) -> None:
    """Drop the live-only gauges of processes that are gone (their counters stay).

    Two scrapes can do this at once (the server answers each in a thread of its own), so a
    file already removed by the other one is not an error.
    """
    live_files: dict[int, list[str]] = {}
    for entry in os.scandir(path):
        match = _PID.search(entry.name)
        if match is not None and entry.name.startswith("gauge_live"):
            live_files.setdefault(int(match.group(1)), []).append(entry.path)
    for pid, files in live_files.items():
        if not process_alive(pid):
            for file in files:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(file)


def clear_stale(path: str) -> int:
    """Remove the metric files of processes no longer running, left by an earlier run:
    counted again, they would add that run's totals to this one's. Files of live
    processes (others sharing the directory) stay. Returns how many went."""
    removed = 0
    for entry in os.scandir(path):
        match = _PID.search(entry.name)
        if match is not None and not process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)
                removed += 1
    return removed


def _readable(file: str) -> bool:
    """Whether every value in the metric file `file` can be read."""
    try:
        for key, _, _, _ in MmapedDict.read_all_values_from_file(file):  # type: ignore[no-untyped-call]
            _, _, labels, _ = json.loads(key)
            labels.items()
    except FileNotFoundError:
        return False  # a dead process's live gauges, removed since the listing
    except _UNREADABLE as exc:
        if file not in _reported:
            _reported.add(file)
            log.warning("metric file %s left out of the scrapes: %s", file, exc)
        return False
    return True


def collect(path: str) -> Iterable[Metric]:
    """The metrics of every process writing to `path`, combined.

    A process creates its file empty and only then gives it its size and header, so a
    process being started (or one killed at that moment, whose file stays so) leaves a
    file too short to hold anything: it is left out instead of failing the whole scrape,
    as is a file that cannot be read for any other reason (logged once).
    """
    files = []
    for entry in os.scandir(path):
        if not entry.name.endswith(".db"):
            continue
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_size >= _HEADER:
                files.append(entry.path)
    try:
        return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]
    except _UNREADABLE:
        # Files only grow and values are written before the header counts them, so a
        # file read whole once reads again: one pass to find the bad ones is enough.
        readable = [file for file in files if _readable(file)]
        return MultiProcessCollector.merge(readable, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]


class _FleetCollector(Collector):
    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        forget_dead(self.path)
        return collect(self.path)


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
        for family in collect(self.path):
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


__all__ = [
    "DIR_VARIABLE",
    "Fleet",
    "collect",
    "directory",
    "enable",
    "forget_dead",
    "fresh_directory",
]
