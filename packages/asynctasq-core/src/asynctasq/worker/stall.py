"""Saying where a stopping worker is stuck.

A worker told to stop exits within its shutdown deadline, or a few seconds after it once the
tasks still running are given back. One that does not is about to be killed (by its
supervisor, systemd or Kubernetes) with nothing said about why. So, `STALL_GRACE` seconds
past the deadline, the asyncio tasks still pending are logged with the line each one waits
at, and every thread's stack goes to stderr: that second part comes from a watchdog thread,
so it is written even when the event loop itself is blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import sys
from typing import Any, TextIO

log = logging.getLogger("asynctasq.worker")

STALL_GRACE = 10.0
"""Seconds past the shutdown deadline before a worker still stopping reports where it is."""

MAX_TASKS_SHOWN = 20
MAX_DEPTH = 100
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__)


class StallReport:
    """Armed when a stop begins, disarmed when the worker has stopped.

    Args:
        after: Seconds from `arm` to the report.
        stream: Where the threads' stacks go (a file with a descriptor); the process's
            stderr when not given.
    """

    def __init__(self, after: float, stream: TextIO | None = None) -> None:
        self.after = after
        self._stream = stream
        self._handle: asyncio.TimerHandle | None = None
        self._dumping = False

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Report in `after` seconds unless disarmed first (arming twice keeps the first)."""
        if self._handle is not None:
            return
        self._handle = loop.call_later(self.after, self._log_pending)
        stream = self._stream or _stderr()
        if stream is not None:
            # one second later than the log, so the two do not interleave
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                faulthandler.dump_traceback_later(self.after + 1, file=stream)
                self._dumping = True

    def disarm(self) -> None:
        """The worker stopped: no report."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._dumping:
            faulthandler.cancel_dump_traceback_later()
            self._dumping = False

    def _log_pending(self) -> None:
        self._handle = None
        tasks = [t for t in asyncio.all_tasks() if not t.done()]
        lines = [_where(t) for t in tasks[:MAX_TASKS_SHOWN]]
        if len(tasks) > MAX_TASKS_SHOWN:
            lines.append(f"... and {len(tasks) - MAX_TASKS_SHOWN} more")
        log.error(
            "still stopping %.1f s after the stop began; %d asyncio task(s) pending:\n  %s",
            self.after,
            len(tasks),
            "\n  ".join(lines) or "(none)",
        )


def _where(task: asyncio.Task[object]) -> str:
    """``name: outer > ... > inner at file:line``: the coroutines the task awaits, one in
    another (`Task.get_stack` shows only the outermost), and the innermost line outside
    asyncio itself, which is what it is waiting for."""
    coro: Any = task.get_coro()
    names: list[str] = []
    place = ""
    for _ in range(MAX_DEPTH):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        names.append(getattr(code, "co_qualname", code.co_name))
        if not code.co_filename.startswith(_ASYNCIO_DIR):
            place = f" at {code.co_filename}:{frame.f_lineno}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if coro is None:
            break
    shown = " > ".join(names) or type(task.get_coro()).__name__
    return f"{task.get_name()}: {shown}{place}"


def _stderr() -> TextIO | None:
    """The process's real stderr, when it has a file descriptor (faulthandler needs one)."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, ValueError, OSError):
            continue
    return None
