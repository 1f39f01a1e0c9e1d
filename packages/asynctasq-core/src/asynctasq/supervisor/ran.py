"""A supervised worker tells its supervisor it started running tasks.

A worker process that dies before it ran any task died of its set-up (an import, a setting,
the broker), and every restart would die the same way: that is what a crash loop counts. One
that dies while running tasks was most likely killed by one of them (or by the system, for
memory): its tasks' leases bring them back, a task that keeps killing workers is
dead-lettered once its attempts are used up, and the worker must be started again, not given
up on.

The supervisor hands each child the write end of a pipe (`RAN_VARIABLE`); the worker writes one
byte when its first task starts. The supervisor reads it only once the child has died, so
nothing waits on the pipe, and processes the worker forks later may hold the end too.
"""

from __future__ import annotations

import contextlib
import os

RAN_VARIABLE = "ASYNCTASQ_SUPERVISOR_RAN_FD"
"""The descriptor a supervised worker writes to once it starts running tasks."""


def report_ran() -> None:
    """Tell the supervisor, if there is one, that this process started running tasks (once;
    later calls do nothing)."""
    raw = os.environ.pop(RAN_VARIABLE, "")
    if not raw.isdigit():
        return
    fd = int(raw)
    with contextlib.suppress(OSError):
        os.write(fd, b"r")
    with contextlib.suppress(OSError):
        os.close(fd)


def open_report() -> tuple[int, int]:
    """A pipe for one child: (the end the supervisor reads, the end the child writes)."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    return read_end, write_end


def child_ran(read_end: int) -> bool:
    """Whether the child holding the other end reported; closes `read_end`."""
    try:
        return os.read(read_end, 1) == b"r"
    except OSError:  # nothing written (BlockingIOError), or the end is gone
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(read_end)


__all__ = ["RAN_VARIABLE", "child_ran", "open_report", "report_ran"]
