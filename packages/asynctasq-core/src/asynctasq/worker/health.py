"""Is a worker alive and ready? For orchestrators' probes (HTTP or a file).

* **Alive**: its event loop answers. A loop blocked by a task that never awaits is a worker
  that will never take work again: restarting it is the cure.
* **Ready**: it is connected to the broker and taking work: its last fetch went through
  recently (or every slot is busy, so it has no reason to fetch), and it is not stopping.
  A broker outage makes a worker not ready, not dead: it reconnects by itself.

`HealthFile` writes both into a file for exec probes (``asynctasq worker --health-file``);
``asynctasq-prometheus`` serves them as ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from asynctasq.middleware import Middleware
from asynctasq.redaction import redact_text
from asynctasq.supervisor.sizing import child_number

if TYPE_CHECKING:
    from asynctasq.worker.worker import Worker

log = logging.getLogger("asynctasq.worker")

HEALTH_FILE_INTERVAL = 5.0
"""Seconds between two writes of the health file."""
MIN_STALE_AFTER = 10.0
"""Seconds without a fetch going through after which a worker with free slots is not ready
(or three fetch waits, when longer)."""


def readiness(worker: Worker, now: float | None = None) -> str | None:
    """None when `worker` is taking work, else why not (one line).

    Args:
        worker: The worker to judge.
        now: The current `time.monotonic()` (default: now).
    """
    if worker.stopping:
        return "stopping"
    last = worker.last_fetch_at
    if last is None:
        error = worker.last_fetch_error
        return redact_text(f"fetching fails: {error}") if error else "not fetching yet"
    if worker.last_fetch_error is not None:
        return redact_text(f"fetching fails: {worker.last_fetch_error}")
    if worker.running >= worker.concurrency:
        return None  # every slot busy: no fetch is due
    stale_after = max(MIN_STALE_AFTER, 3 * worker.poll_wait)
    age = (time.monotonic() if now is None else now) - last
    if age > stale_after:
        return f"no fetch went through for {age:.0f} s"
    return None


class HealthFile(Middleware):
    """Rewrites `path` every `interval` seconds while the worker's event loop runs.

    The file holds one line: ``ready`` or ``not ready: <why>``. Its modification time says
    the loop is alive; its content says whether the worker takes work. It is written
    atomically (a probe never reads half a line) and removed when the worker stops.

    Probes: alive when modified within the last 30 s
    (``find PATH -newermt '-30 seconds' | grep -q .``); ready when, besides, it reads
    ``ready`` (``grep -qx ready PATH``).

    Under a supervisor (``--workers N``) each worker process writes ``PATH.<number>``.

    Args:
        path: The file (its directory must exist and be writable).
        interval: Seconds between two writes.
    """

    def __init__(self, path: str | os.PathLike[str], interval: float = HEALTH_FILE_INTERVAL):
        number = child_number()
        self.path = Path(path) if number is None else Path(f"{os.fspath(path)}.{number}")
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def before_worker_boot(self, worker: Worker) -> None:
        """Write the file at once, then every `interval` seconds."""
        self.write(worker)
        self._task = asyncio.get_running_loop().create_task(
            self._loop(worker), name="asynctasq-health-file"
        )

    def after_worker_shutdown(self, worker: Worker) -> None:
        """Stop writing and remove the file: a stopped worker is neither alive nor ready."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def write(self, worker: Worker) -> None:
        """Write the worker's state now (errors are logged: the work goes on)."""
        why = readiness(worker)
        line = "ready\n" if why is None else f"not ready: {why}\n"
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            temporary.write_text(line, encoding="utf-8")
            temporary.replace(self.path)
        except OSError as exc:
            log.warning("cannot write the health file %s: %s", self.path, exc)

    async def _loop(self, worker: Worker) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.write(worker)


__all__ = ["HEALTH_FILE_INTERVAL", "HealthFile", "readiness"]
